/* SPDX-License-Identifier: MIT */
/*
 * Private: CRC-32 (IEEE 802.3, reflected, as zlib and Ethernet), the
 * snapshot blob's checksum; shared with the tests and the fuzz target that
 * reseal edited blobs. A blob is small and written rarely, so bit by bit is
 * fast enough and needs no table.
 */
#ifndef UVIRTIO_SRC_CRC32_H
#define UVIRTIO_SRC_CRC32_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
	uint32_t crc = 0xffffffffu;

	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
	}
	return ~crc;
}

#endif
