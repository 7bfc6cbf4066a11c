// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title Packed settlement entries and the batch hash onion.
/// @notice An entry is 21 bytes: uint32 accountId | uint8 tokenIndex | int128 delta, big-endian,
/// the delta in two's complement. keeper/chain/settlement-batches.ts encodes the same bytes.
library SettlementEntries {
    uint256 internal constant ENTRY_SIZE = 21;

    /// @notice Decodes the entry in the top 21 bytes of `word` (a calldataload at the entry's
    /// offset; the 11 bytes below belong to the next entry and are ignored).
    function decode(uint256 word) internal pure returns (uint256 accountId, uint256 tokenIndex, int256 delta) {
        assembly ("memory-safe") {
            accountId := shr(224, word)
            tokenIndex := and(shr(216, word), 0xff)
            // the delta is bits 215..88; signextend reads its sign from byte 15 and drops the rest
            delta := signextend(15, shr(88, word))
        }
    }

    /// @notice h_i = keccak256(abi.encode(sessionId, i, keccak256(entries_i), h_{i+1})).
    function link(uint32 sessionId, uint32 index, bytes32 entriesHash, bytes32 next) internal pure returns (bytes32) {
        return keccak256(abi.encode(sessionId, index, entriesHash, next));
    }
}
