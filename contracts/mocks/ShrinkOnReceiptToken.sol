// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice Hostile token: receiving a transfer costs the recipient twice the value (burnt, as far
/// as its balance goes), so a recipient's balance can go down on receipt. Mints are exempt, so a
/// holder can be funded.
contract ShrinkOnReceiptToken is ERC20 {
    constructor() ERC20("Shrink On Receipt", "SHRK") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (from == address(0) || to == address(0)) return;
        uint256 penalty = 2 * value;
        uint256 held = balanceOf(to);
        super._update(to, address(0), penalty < held ? penalty : held);
    }
}
