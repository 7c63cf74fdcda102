/* SPDX-License-Identifier: MIT */
/*
 * crc32c (Castagnoli, reflected polynomial 0x82F63B78), init and final xor
 * 0xffffffff, chaining through the crc argument.
 *
 * Two implementations of the raw register update (no xors):
 *  - SSE4.2 crc32 instruction, 8 bytes at a time. Over large buffers three
 *    independent streams run interleaved (the instruction has a latency of
 *    about three cycles and a throughput of one per cycle) and are joined
 *    with a precomputed "append N zero bytes" operator;
 *  - portable slicing-by-8 tables.
 * The choice is made once (pthread_once): SSE4.2 when the CPU has it, unless
 * the environment variable DEVMIG_CRC32C_SW is set to a non-empty value.
 * devmig_crc32c_sw() always takes the portable path (for tests/benchmarks).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_X86_CRC 1
#include <nmmintrin.h>
#endif

#define POLY 0x82F63B78u

static uint32_t sw_table[8][256];

#ifdef HAVE_X86_CRC
/* Per-stream lengths of the 3-way interleaved blocks (multiples of 8). */
#define LONG_BLOCK 8192u
#define SHORT_BLOCK 256u
/* shift_X[k][b]: the register after X zero bytes, contribution of byte k = b. */
static uint32_t shift_long[4][256];
static uint32_t shift_short[4][256];
#endif

static bool use_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static uint32_t sw_update(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		crc = (crc >> 8) ^ sw_table[0][(crc ^ *p++) & 0xff];
		len--;
	}
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (len >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		v ^= crc;
		crc = sw_table[7][v & 0xff] ^ sw_table[6][(v >> 8) & 0xff] ^
		      sw_table[5][(v >> 16) & 0xff] ^ sw_table[4][(v >> 24) & 0xff] ^
		      sw_table[3][(v >> 32) & 0xff] ^ sw_table[2][(v >> 40) & 0xff] ^
		      sw_table[1][(v >> 48) & 0xff] ^ sw_table[0][v >> 56];
		p += 8;
		len -= 8;
	}
#endif
	while (len--)
		crc = (crc >> 8) ^ sw_table[0][(crc ^ *p++) & 0xff];
	return crc;
}

#ifdef HAVE_X86_CRC
/* Build the table form of the linear map "feed n zero bytes" on the register. */
static void build_shift(uint32_t tab[4][256], size_t n)
{
	static const uint8_t zeros[LONG_BLOCK];
	uint32_t col[32];

	for (unsigned i = 0; i < 32; i++)
		col[i] = sw_update(1u << i, zeros, n);
	for (unsigned k = 0; k < 4; k++) {
		for (unsigned b = 0; b < 256; b++) {
			uint32_t v = 0;

			for (unsigned bit = 0; bit < 8; bit++)
				if (b & (1u << bit))
					v ^= col[8 * k + bit];
			tab[k][b] = v;
		}
	}
}

static inline uint32_t apply_shift(const uint32_t tab[4][256], uint32_t c)
{
	return tab[0][c & 0xff] ^ tab[1][(c >> 8) & 0xff] ^ tab[2][(c >> 16) & 0xff] ^
	       tab[3][c >> 24];
}

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

__attribute__((target("sse4.2")))
static uint32_t hw_update(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c0 = crc;

	while (len && ((uintptr_t)p & 7)) {
		c0 = _mm_crc32_u8((uint32_t)c0, *p++);
		len--;
	}
	while (len >= 3 * LONG_BLOCK) {
		uint64_t c1 = 0, c2 = 0;
		const uint8_t *end = p + LONG_BLOCK;

		do {
			c0 = _mm_crc32_u64(c0, load64(p));
			c1 = _mm_crc32_u64(c1, load64(p + LONG_BLOCK));
			c2 = _mm_crc32_u64(c2, load64(p + 2 * LONG_BLOCK));
			p += 8;
		} while (p < end);
		c0 = apply_shift(shift_long, (uint32_t)c0) ^ c1;
		c0 = apply_shift(shift_long, (uint32_t)c0) ^ c2;
		p += 2 * LONG_BLOCK;
		len -= 3 * LONG_BLOCK;
	}
	while (len >= 3 * SHORT_BLOCK) {
		uint64_t c1 = 0, c2 = 0;
		const uint8_t *end = p + SHORT_BLOCK;

		do {
			c0 = _mm_crc32_u64(c0, load64(p));
			c1 = _mm_crc32_u64(c1, load64(p + SHORT_BLOCK));
			c2 = _mm_crc32_u64(c2, load64(p + 2 * SHORT_BLOCK));
			p += 8;
		} while (p < end);
		c0 = apply_shift(shift_short, (uint32_t)c0) ^ c1;
		c0 = apply_shift(shift_short, (uint32_t)c0) ^ c2;
		p += 2 * SHORT_BLOCK;
		len -= 3 * SHORT_BLOCK;
	}
	while (len >= 8) {
		c0 = _mm_crc32_u64(c0, load64(p));
		p += 8;
		len -= 8;
	}
	while (len--)
		c0 = _mm_crc32_u8((uint32_t)c0, *p++);
	return (uint32_t)c0;
}
#endif

static void crc_init(void)
{
	for (unsigned i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (POLY & (0u - (c & 1)));
		sw_table[0][i] = c;
	}
	for (unsigned k = 1; k < 8; k++)
		for (unsigned i = 0; i < 256; i++)
			sw_table[k][i] = (sw_table[k - 1][i] >> 8) ^
					 sw_table[0][sw_table[k - 1][i] & 0xff];
#ifdef HAVE_X86_CRC
	const char *force_sw = getenv("DEVMIG_CRC32C_SW");

	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2") && !(force_sw && *force_sw)) {
		build_shift(shift_long, LONG_BLOCK);
		build_shift(shift_short, SHORT_BLOCK);
		use_hw = true;
	}
#endif
}

uint32_t devmig_crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc_init);
#ifdef HAVE_X86_CRC
	if (use_hw)
		return ~hw_update(~crc, buf, len);
#endif
	return ~sw_update(~crc, buf, len);
}

uint32_t devmig_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc_init);
	return ~sw_update(~crc, buf, len);
}

bool devmig_crc32c_hw_active(void)
{
	pthread_once(&crc_once, crc_init);
	return use_hw;
}
