// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {LazyBalance} from "../../contracts/libraries/LazyBalance.sol";
import {SettlementEntries} from "../../contracts/libraries/SettlementEntries.sol";

/// @notice Fuzz tests for the packing arithmetic the vault's settlement loop relies on.
contract LazyBalanceTest {
    function testFuzz_packRoundTrips(uint112 settled, int112 pending, uint32 session) public pure {
        uint256 word = LazyBalance.pack(settled, pending, session);
        require(LazyBalance.settledOf(word) == settled, "settled");
        require(LazyBalance.pendingOf(word) == pending, "pending");
        require(LazyBalance.sessionOf(word) == session, "session");
    }

    function testFuzz_foldedIsSettledPlusPending(uint112 settled, int112 pending, uint32 session) public pure {
        uint256 word = LazyBalance.pack(settled, pending, session);
        require(LazyBalance.folded(word) == int256(uint256(settled)) + pending, "folded");
    }

    function testFuzz_fieldsDoNotBleed(uint112 settled, int112 pending, uint32 session) public pure {
        // a negative pending delta must not reach the settled bits, nor the session bits
        uint256 word = LazyBalance.pack(settled, pending, session);
        require(word >> 144 == settled, "settled bits");
        require(uint32(word) == session, "session bits");
        require(LazyBalance.pack(0, pending, 0) >> 144 == 0, "pending above its field");
    }

    function testFuzz_decodeMatchesEncodePacked(uint32 accountId, uint8 tokenIndex, int128 delta, bytes11 tail)
        public
        pure
    {
        bytes32 word = bytes32(abi.encodePacked(accountId, tokenIndex, delta, tail));
        (uint256 a, uint256 t, int256 d) = SettlementEntries.decode(uint256(word));
        require(a == accountId, "accountId");
        require(t == tokenIndex, "tokenIndex");
        require(d == delta, "delta");
    }

    function testFuzz_int112RangeCheck(int128 delta) public pure {
        // the vault's assembly accepts a delta iff signextend(13, delta) == delta
        int256 extended;
        assembly {
            extended := signextend(13, delta)
        }
        bool fits = delta >= type(int112).min && delta <= type(int112).max;
        require((extended == delta) == fits, "int112 check");
    }

    function testFuzz_linkIsAbiEncodeHash(uint32 sessionId, uint32 index, bytes calldata entries, bytes32 next)
        public
        pure
    {
        require(
            SettlementEntries.link(sessionId, index, keccak256(entries), next)
                == keccak256(abi.encode(sessionId, index, keccak256(entries), next)),
            "link"
        );
    }

    function test_knownEntry() public pure {
        // same vector as test/settlement/batches.test.ts
        bytes memory packed = hex"000000010200000000000000000000000000000000000000000000";
        (uint256 a, uint256 t, int256 d) = SettlementEntries.decode(uint256(bytes32(packed)));
        require(a == 1 && t == 2 && d == 0, "zero delta");
        packed = hex"0000000102ffffffffffffffffffffffffffffffff0000000000";
        (a, t, d) = SettlementEntries.decode(uint256(bytes32(packed)));
        require(a == 1 && t == 2 && d == -1, "minus one");
    }
}
