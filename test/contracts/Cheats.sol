// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice The few Hardhat/Foundry cheatcodes these tests use (forge-std on npm is broken, so
/// they are declared here at the standard cheatcode address).
interface Vm {
    function prank(address sender) external;
    function warp(uint256 timestamp) external;
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function addr(uint256 privateKey) external pure returns (address);
}

abstract contract Cheats {
    Vm internal constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);

    /// @dev Maps any x into [min, max] (inclusive), keeping small inputs small.
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        uint256 size = max - min;
        if (size == type(uint256).max) return x;
        return min + (x % (size + 1));
    }
}
