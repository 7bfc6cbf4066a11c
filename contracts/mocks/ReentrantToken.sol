// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice Hostile token: on every transfer it calls `target` with `payload` (once armed) and
/// bubbles up any revert, so a test sees exactly what the callee refused.
contract ReentrantToken is ERC20 {
    address public target;
    bytes public payload;
    bool private _inHook;

    constructor() ERC20("Reentrant", "REE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
    }

    function disarm() external {
        target = address(0);
        delete payload;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (target == address(0) || _inHook || from == address(0)) return;
        _inHook = true;
        (bool ok, bytes memory ret) = target.call(payload);
        _inHook = false;
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
    }
}
