// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title One (account, token) balance in one storage word.
/// @notice Layout, high bits to low: settled uint112 | pending int112 | pendingSession uint32.
/// `pending` is the delta posted in session `pendingSession` (0: none). It counts once that
/// session is finalized and never counts if the session is voided, so folding it is a pure
/// function of the word and that session's outcome; nothing has to visit the slot at finalize.
/// @dev Callers keep `settled` within [0, MAX_BALANCE] and `pending` within int112; `pack` does
/// not check (it sits on the settlement hot path, where the range was checked just before).
library LazyBalance {
    /// @notice Largest balance a slot holds: 2^112 - 1 (~5.19e33 base units).
    uint256 internal constant MAX_BALANCE = type(uint112).max;
    int256 internal constant MIN_DELTA = type(int112).min;
    int256 internal constant MAX_DELTA = type(int112).max;

    uint256 private constant SETTLED_SHIFT = 144;
    uint256 private constant PENDING_SHIFT = 32;
    uint256 private constant MASK_112 = (1 << 112) - 1;

    function pack(uint256 settled, int256 pending, uint32 pendingSession) internal pure returns (uint256 word) {
        word = (settled << SETTLED_SHIFT) | ((uint256(pending) & MASK_112) << PENDING_SHIFT) | pendingSession;
    }

    function settledOf(uint256 word) internal pure returns (uint256) {
        return word >> SETTLED_SHIFT;
    }

    function pendingOf(uint256 word) internal pure returns (int256 pending) {
        assembly ("memory-safe") {
            // byte 13 holds the sign bit of the 14-byte field; signextend also clears `settled`
            pending := signextend(13, shr(PENDING_SHIFT, word))
        }
    }

    function sessionOf(uint256 word) internal pure returns (uint32) {
        return uint32(word);
    }

    /// @notice `settled + pending`, the balance once the pending session is finalized. Signed so
    /// that a caller can range-check it; with the vault's invariants it is in [0, MAX_BALANCE].
    function folded(uint256 word) internal pure returns (int256) {
        return int256(settledOf(word)) + pendingOf(word);
    }
}
