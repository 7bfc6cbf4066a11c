// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;
import {Smoke} from "../../contracts/Smoke.sol";
contract SmokeTest {
  Smoke s;
  function setUp() public { s = new Smoke(); }
  function testFuzz_set(uint256 v) public { s.set(v); require(s.x() == v, "x"); }
}
