// Package efuse holds the eFuse facts of the supported chips as Go values and
// the pure logic around them: per-chip field tables, an Image of raw block
// words, decoding into named values, planning a burn the way espefuse does it
// (data words, Reed-Solomon or 3/4 check words, block order, postponed BLOCK0
// fields, the refusal rules), and simulating a burn on an image.
//
// It follows the shared docs/esp-security-facts.md: §1.3 and §1.4 (what a burn
// programs and in which order), §1.5 (what a controller does with it), §2 (block
// layout, Reed-Solomon and 3/4 coding, byte orders) and §3 (fields, write and
// read protection, key purposes, burn_key, anti-rollback). Field positions and
// protection bits are data from espefuse's efuse_defs tables, checked against
// espefuse 4.9.1 summary output in testdata.
//
// An Image holds words as a block shows them. Two views matter and are kept
// apart: the physical bits (what a virtual controller stores; Apply and
// (*Image).Program work on them) and what the read registers show, where a
// read-protected block reads as zero ((*Image).ReadView). Plans are made from
// what the host can read.
//
// The package does no I/O: the controller driver (flasher) and the virtual
// controller (fixtures/virtual) use it; block read addresses live in esp/chip.
package efuse
