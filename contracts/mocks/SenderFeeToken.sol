// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice Hostile token: every transfer charges the sender `feeBps` on top of the value (burnt),
/// so a sender's balance falls by more than it sent. A vault that trusted `amount` would pay the
/// fee out of other users' funds.
contract SenderFeeToken is ERC20 {
    uint256 public immutable feeBps;

    constructor(uint256 feeBps_) ERC20("Sender Fee", "SFEE") {
        feeBps = feeBps_;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (from == address(0) || to == address(0)) return;
        super._update(from, address(0), value * feeBps / 10_000);
    }
}
