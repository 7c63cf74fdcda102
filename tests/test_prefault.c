/* SPDX-License-Identifier: MIT */
/*
 * Faulting memory in ahead of its writer (lib/core/prefault.c): pages come
 * in up to the window past what the writer reached, not beyond, and never
 * change what the writer put there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "prefault.h"

#define MIB (1ull << 20)
#define SIZE (64 * MIB)
#define WINDOW (16 * MIB)

static uint8_t *map(void)
{
	void *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	madvise(p, SIZE, MADV_NOHUGEPAGE); /* page by page: the counts below are exact */
	return p;
}

/* Bytes of [p, p + len) resident. */
static uint64_t resident(const uint8_t *p, uint64_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t n = (size_t)((len + (uint64_t)page - 1) / (uint64_t)page);
	unsigned char *vec = test_malloc(n);
	assert_int_equal(mincore((void *)p, len, vec), 0);
	uint64_t r = 0;
	for (size_t i = 0; i < n; i++)
		r += (vec[i] & 1) ? (uint64_t)page : 0;
	test_free(vec);
	return r;
}

/* Until [p, p + len) is all resident, up to 10 s. */
static bool wait_resident(const uint8_t *p, uint64_t len)
{
	for (int i = 0; i < 10000; i++) {
		if (resident(p, len) == len)
			return true;
		usleep(1000);
	}
	return false;
}

static void the_first_window_comes_in_and_nothing_past_it(void **state)
{
	(void)state;
	uint8_t *m = map();
	struct devmig_prefault *p = devmig_prefault_start(m, SIZE, WINDOW);
	assert_non_null(p);
	assert_true(wait_resident(m, WINDOW));
	devmig_prefault_stop(p);
	assert_int_equal(resident(m + WINDOW, SIZE - WINDOW), 0);
	munmap(m, SIZE);
}

static void the_window_follows_the_writer_and_keeps_its_data(void **state)
{
	(void)state;
	uint8_t *m = map();
	struct devmig_prefault *p = devmig_prefault_start(m, SIZE, WINDOW);
	assert_non_null(p);
	/* The writer writes 24 MiB while the thread faults: its bytes stay. */
	for (uint64_t off = 0; off < 24 * MIB; off += 4096)
		m[off] = (uint8_t)(off >> 12);
	devmig_prefault_reach(p, 24 * MIB);
	assert_true(wait_resident(m, 24 * MIB + WINDOW));
	devmig_prefault_stop(p);
	for (uint64_t off = 0; off < 24 * MIB; off += 4096)
		assert_int_equal(m[off], (uint8_t)(off >> 12));
	assert_int_equal(resident(m + 24 * MIB + WINDOW, SIZE - 24 * MIB - WINDOW), 0);
	munmap(m, SIZE);
}

static void the_end_is_reached_and_stop_is_prompt(void **state)
{
	(void)state;
	uint8_t *m = map();
	struct devmig_prefault *p = devmig_prefault_start(m, SIZE, WINDOW);
	assert_non_null(p);
	devmig_prefault_reach(p, SIZE - 4096); /* past the last step: up to the end */
	assert_true(wait_resident(m, SIZE));
	devmig_prefault_stop(p);
	devmig_prefault_stop(NULL);
	devmig_prefault_reach(NULL, 0);
	munmap(m, SIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_first_window_comes_in_and_nothing_past_it),
		cmocka_unit_test(the_window_follows_the_writer_and_keeps_its_data),
		cmocka_unit_test(the_end_is_reached_and_stop_is_prompt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
