/* SPDX-License-Identifier: MIT */
/*
 * Profiles: validation (one test per kind of mistake), build, dump round
 * trip, and the core hook: two variants with different native layouts
 * present byte-identical config space under one profile and migrate to
 * each other, which they cannot without it.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "devmig/client.h"
#include "devmig/device.h"
#include "devmig/pci.h"
#include "devmig/profile.h"
#include "devmig/server.h"
#include "fixture.h"
#include "pci_config.h"

#define CONFIG_REGION 7u

static char err[16384];

/* ---- helpers ------------------------------------------------------------- */

/* A profile with the given BARs, capabilities and extended ones (JSON array bodies). */
static char *text_of(const char *bars, const char *caps, const char *ext)
{
	static char buf[8192];

	snprintf(buf, sizeof(buf),
		 "{ \"vendor\": \"0x1af4\", \"device\": \"0x10fa\", \"class\": \"0xff0000\",\n"
		 "  \"bars\": [ %s ],\n  \"capabilities\": [ %s ],\n"
		 "  \"extended_capabilities\": [ %s ] }\n",
		 bars, caps, ext);
	return buf;
}

#define TWO_BARS                                             \
	"{ \"index\": 0, \"size\": 4096, \"type\": \"mem32\" }, " \
	"{ \"index\": 1, \"size\": 4096, \"type\": \"mem32\" }"

static struct devmig_profile *parse(const char *text)
{
	return devmig_profile_parse(text, strlen(text), err, sizeof(err));
}

static unsigned lines(const char *s)
{
	unsigned n = *s ? 1 : 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Refused with exactly one mistake, which says want. */
static void refused_with(const char *text, const char *want)
{
	struct devmig_profile *p = parse(text);

	if (p || !strstr(err, want) || lines(err) != 1)
		fail_msg("wanted the one mistake \"%s\", got %s:\n%s", want, p ? "a profile" : "",
			 err);
}

static struct devmig_pci_config *build(const struct devmig_profile *p)
{
	struct devmig_pci_config *cfg = devmig_pcicfg_create(NULL, NULL);

	assert_non_null(cfg);
	if (devmig_profile_build(p, cfg, err, sizeof(err)))
		fail_msg("build: %s", err);
	devmig_pcicfg_seal(cfg);
	return cfg;
}

static void read_all(const struct devmig_pci_config *cfg, uint8_t *bytes, uint64_t *sizes)
{
	assert_int_equal(devmig_pcicfg_read(cfg, 0, bytes, DEVMIG_PCI_CFG_SIZE), 0);
	for (unsigned b = 0; b < DEVMIG_PCI_NUM_BARS; b++) {
		sizes[b] = 0;
		devmig_pcicfg_bar_info(cfg, b, &sizes[b], NULL);
	}
}

/* dump -> parse -> build gives the same 4096 bytes and the same fingerprint. */
static void round_trip(const struct devmig_pci_config *a)
{
	uint8_t x[DEVMIG_PCI_CFG_SIZE], y[DEVMIG_PCI_CFG_SIZE];
	uint64_t sizes[DEVMIG_PCI_NUM_BARS], sizes2[DEVMIG_PCI_NUM_BARS];

	read_all(a, x, sizes);
	char *text = devmig_profile_dump(x, sizes, err, sizeof(err));
	if (!text)
		fail_msg("dump: %s", err);
	struct devmig_profile *p = parse(text);
	if (!p)
		fail_msg("the dump does not parse: %s\n%s", err, text);
	struct devmig_pci_config *b = build(p);
	read_all(b, y, sizes2);
	assert_memory_equal(x, y, sizeof(x));
	assert_memory_equal(sizes, sizes2, sizeof(sizes));
	assert_true(devmig_pcicfg_fingerprint(a) == devmig_pcicfg_fingerprint(b));
	devmig_pcicfg_destroy(b);
	devmig_profile_free(p);
	free(text);
}

/* profiles/NAME next to the sources: the build root is two levels above this binary. */
static struct devmig_profile *load_sample(const char *name)
{
	char exe[PATH_MAX], path[2 * PATH_MAX];
	const char *src = __FILE__, *slash = strrchr(src, '/');
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	assert_true(n > 0 && slash);
	exe[n] = '\0';
	for (int up = 0; up < 2; up++)
		*strrchr(exe, '/') = '\0';
	snprintf(path, sizeof(path), "%s%s%.*s/../profiles/%s", src[0] == '/' ? "" : exe,
		 src[0] == '/' ? "" : "/", (int)(slash - src), src, name);
	struct devmig_profile *p = devmig_profile_load(path, err, sizeof(err));
	if (!p)
		fail_msg("%s: %s", path, err);
	return p;
}

/* ---- validation: one test per kind of mistake ------------------------------ */

static void accepts_a_complete_profile(void **state)
{
	(void)state;
	struct devmig_profile *p = parse(text_of(
		TWO_BARS,
		"{ \"id\": \"pm\", \"offset\": \"0x40\" },"
		"{ \"id\": \"msi\", \"offset\": \"0x48\", \"vectors\": 4, \"64bit\": true, \"maskable\": true },"
		"{ \"id\": \"msix\", \"offset\": \"0x60\", \"vectors\": 2, \"table_bar\": 1, \"table_offset\": 0,"
		"  \"pba_bar\": 1, \"pba_offset\": 2048 },"
		"{ \"id\": \"pcie\", \"offset\": \"0x70\", \"link_speed\": 3, \"link_width\": 8 },"
		"{ \"id\": \"vendor\", \"offset\": \"0xb0\", \"data\": \"01 02 03\" },"
		"{ \"id\": 18, \"offset\": \"0xc0\", \"data\": \"0a0b\" }",
		"{ \"id\": \"pasid\", \"offset\": 256, \"max_width\": 20, \"exec\": true },"
		"{ \"id\": \"dsn\", \"offset\": \"0x108\", \"serial\": \"0xfedcba9876543210\" },"
		"{ \"id\": 11, \"version\": 1, \"offset\": \"0x200\", \"data\": \"deadbeef\" }"));
	if (!p)
		fail_msg("%s", err);
	devmig_profile_free(p);
}

static void wrong_type_names_the_member(void **state)
{
	(void)state;
	refused_with("{ \"vendor\": \"0x1af4\", \"device\": true, \"class\": 0 }",
		     "device: expected an integer or a \"0x...\" string, got true");
	refused_with("{ \"vendor\": \"0x1af4\", \"device\": 1, \"class\": 0, \"revision\": \"1\" }",
		     "revision: expected an integer or a \"0x...\" string, got the string \"1\"");
	refused_with("{ \"vendor\": 1.5, \"device\": 1, \"class\": 0 }",
		     "vendor: expected an integer or a \"0x...\" string, got the number 1.5");
	refused_with(text_of(TWO_BARS, "{ \"id\": \"msi\", \"offset\": \"0x40\", \"vectors\": 1, "
				       "\"64bit\": \"yes\" }", ""),
		     "capabilities[0].64bit: expected true or false, got the string \"yes\"");
	refused_with(text_of(TWO_BARS, "", "{ \"id\": \"dsn\", \"offset\": \"0x100\", \"serial\": \"0x12g\" }"),
		     "extended_capabilities[0].serial: \"0x12g\" is not a hex number");
	refused_with(text_of(TWO_BARS, "{ \"id\": \"vendor\", \"offset\": \"0x40\", \"data\": \"0x0a\" }", ""),
		     "capabilities[0].data: character 1 ('x') is not a hex digit");
	refused_with("{ \"vendor\": 1, \"device\": 1, \"class\": 0, \"bars\": {} }",
		     "bars: expected an array, got an object");
	refused_with("[ 1 ]", "profile: expected a JSON object, got an array");
}

static void out_of_range_names_the_member(void **state)
{
	(void)state;
	refused_with("{ \"vendor\": \"0x1af4\", \"device\": 70000, \"class\": 0 }",
		     "device: 70000 is out of range (0-65535)");
	refused_with("{ \"vendor\": \"0x1af4\", \"device\": 1, \"class\": \"0x1000000\" }",
		     "class: 0x1000000 is out of range (0x0-0xffffff)");
	refused_with("{ \"vendor\": \"0xffff\", \"device\": 1, \"class\": 0 }",
		     "vendor: 0xffff is refused");
	refused_with("{ \"vendor\": 1, \"device\": 1, \"class\": 0, \"interrupt_pin\": 5 }",
		     "interrupt_pin: 5 is out of range (0-4)");
	refused_with("{ \"vendor\": 1, \"device\": -2, \"class\": 0 }", "device: -2 is negative");
	refused_with(text_of(TWO_BARS, "{ \"id\": \"msi\", \"offset\": \"0x40\", \"vectors\": 3 }", ""),
		     "capabilities[0].vectors: 3 is not one of 1, 2, 4, 8, 16, 32");
	refused_with(text_of(TWO_BARS, "{ \"id\": \"pcie\", \"offset\": \"0x40\", \"link_speed\": 7, "
				       "\"link_width\": 4 }", ""),
		     "capabilities[0].link_speed: 7 is out of range");
	refused_with(text_of(TWO_BARS, "{ \"id\": \"pcie\", \"offset\": \"0x40\", \"link_speed\": 1, "
				       "\"link_width\": 3 }", ""),
		     "capabilities[0].link_width: 3 is not one of 1, 2, 4, 8, 12, 16, 32 lanes");
	refused_with(text_of(TWO_BARS, "", "{ \"id\": \"pasid\", \"offset\": \"0x100\", \"max_width\": 21 }"),
		     "extended_capabilities[0].max_width: 21 is out of range (1-20)");
	refused_with(text_of(TWO_BARS, "", "{ \"id\": 11, \"version\": 16, \"offset\": \"0x100\" }"),
		     "extended_capabilities[0].version: 16 is out of range (0-15)");
	refused_with(text_of(TWO_BARS, "{ \"id\": \"msix\", \"offset\": \"0x40\", \"vectors\": 2049, "
				       "\"table_bar\": 1, \"table_offset\": 0, \"pba_bar\": 1, \"pba_offset\": 2048 }", ""),
		     "capabilities[0].vectors: 2049 is out of range (1-2048)");
}

static void missing_member_is_named(void **state)
{
	(void)state;
	refused_with("{ \"vendor\": 1, \"class\": 0 }", "device: missing");
	refused_with(text_of(TWO_BARS, "{ \"id\": \"pcie\", \"offset\": \"0x40\", \"link_speed\": 1 }", ""),
		     "capabilities[0].link_width: missing");
	refused_with(text_of(TWO_BARS, "{ \"offset\": \"0x40\" }", ""), "capabilities[0].id: missing");
	refused_with(text_of("{ \"index\": 0, \"size\": 4096 }", "", ""),
		     "bars[0].type: missing");
}

static void unaligned_offset(void **state)
{
	(void)state;
	refused_with(text_of(TWO_BARS, "{ \"id\": \"pm\", \"offset\": \"0x42\" }", ""),
		     "capabilities[0].offset: 0x42 is not 4-byte aligned");
	refused_with(text_of(TWO_BARS, "", "{ \"id\": \"dsn\", \"offset\": 258, \"serial\": 1 }"),
		     "extended_capabilities[0].offset: 258 is not 4-byte aligned");
}

static void overlap_names_both_capabilities(void **state)
{
	(void)state;
	refused_with(text_of(TWO_BARS,
			     "{ \"id\": \"pm\", \"offset\": \"0x48\" },"
			     "{ \"id\": \"msix\", \"offset\": \"0x4c\", \"vectors\": 1, \"table_bar\": 1,"
			     "  \"table_offset\": 0, \"pba_bar\": 1, \"pba_offset\": 2048 }", ""),
		     "capabilities[1] (msix at 0x4c-0x57): overlaps capabilities[0] (pm at 0x48-0x4f)");
	refused_with(text_of(TWO_BARS, "",
			     "{ \"id\": \"dsn\", \"offset\": \"0x100\", \"serial\": 1 },"
			     "{ \"id\": 11, \"version\": 1, \"offset\": \"0x108\", \"data\": \"00\" }"),
		     "extended_capabilities[1] (ext cap 0x000b at 0x108-0x10f): overlaps extended_capabilities[0] (dsn at 0x100-0x10b)");
	/* The builder's null header at 0x100 when the chain's first capability is elsewhere. */
	refused_with(text_of(TWO_BARS, "",
			     "{ \"id\": \"dsn\", \"offset\": \"0x200\", \"serial\": 1 },"
			     "{ \"id\": \"pasid\", \"offset\": \"0x100\", \"max_width\": 8 }"),
		     "extended_capabilities[1] (pasid at 0x100-0x107): overlaps the null header at 0x100-0x103");
}

static void standard_capability_outside_its_area(void **state)
{
	(void)state;
	refused_with(text_of(TWO_BARS, "{ \"id\": \"pm\", \"offset\": \"0x30\" }", ""),
		     "capabilities[0].offset: 0x30 is outside the standard capability area 0x40-0xff");
	refused_with(text_of(TWO_BARS, "{ \"id\": \"pm\", \"offset\": \"0x100\" }", ""),
		     "capabilities[0].offset: 0x100 is past the standard capability area 0x40-0xff");
}

static void extended_capability_outside_its_area(void **state)
{
	(void)state;
	refused_with(text_of(TWO_BARS, "", "{ \"id\": \"dsn\", \"offset\": \"0xfc\", \"serial\": 1 }"),
		     "extended_capabilities[0].offset: 0xfc is outside the extended capability area 0x100-0xfff");
	refused_with(text_of(TWO_BARS, "", "{ \"id\": \"dsn\", \"offset\": \"0x1000\", \"serial\": 1 }"),
		     "extended_capabilities[0].offset: 0x1000 is outside the extended capability area");
}

static void capability_too_long_for_the_space(void **state)
{
	(void)state;
	refused_with(text_of(TWO_BARS, "{ \"id\": \"pcie\", \"offset\": \"0xd0\", \"link_speed\": 1, "
				       "\"link_width\": 1 }", ""),
		     "capabilities[0] (pcie at 0xd0): its 60 bytes do not fit below 0x100 (it would end at 0x10b)");
	refused_with(text_of(TWO_BARS, "", "{ \"id\": 11, \"version\": 1, \"offset\": \"0xff8\", "
					   "\"data\": \"0102030405\" }"),
		     "extended_capabilities[0] (ext cap 0x000b at 0xff8): its 12 bytes do not fit below 0x1000");
	refused_with(text_of(TWO_BARS, "{ \"id\": \"vendor\", \"offset\": \"0x40\", \"data\": \"00\" },"
				       "{ \"id\": \"vendor\", \"offset\": \"0xf0\", "
				       "\"data\": \"000102030405060708090a0b0c0d\" }", ""),
		     "capabilities[1] (vendor at 0xf0): its 20 bytes do not fit below 0x100");
}

static void bar_slot_taken_by_upper_half(void **state)
{
	(void)state;
	refused_with(text_of("{ \"index\": 0, \"size\": 4096, \"type\": \"mem64\" },"
			     "{ \"index\": 1, \"size\": 4096, \"type\": \"mem32\" }", "", ""),
		     "bars[1] (BAR 1): slot 1 is taken by the upper half of the 64-bit BAR 0 (bars[0])");
	refused_with(text_of("{ \"index\": 3, \"size\": 4096, \"type\": \"mem32\" },"
			     "{ \"index\": 2, \"size\": 4096, \"type\": \"mem64\" }", "", ""),
		     "bars[1] (BAR 2, mem64): its upper half needs slot 3, which bars[0] declares");
	refused_with(text_of("{ \"index\": 5, \"size\": 4096, \"type\": \"mem64\" }", "", ""),
		     "bars[0] (BAR 5, mem64): a 64-bit BAR takes two slots and 5 is the last");
	refused_with(text_of("{ \"index\": 0, \"size\": 4096, \"type\": \"mem32\" },"
			     "{ \"index\": 0, \"size\": 16, \"type\": \"io\" }", "", ""),
		     "bars[1] (BAR 0): BAR 0 is already declared by bars[0]");
}

static void bar_size_not_a_power_of_two(void **state)
{
	(void)state;
	refused_with(text_of("{ \"index\": 0, \"size\": 3000, \"type\": \"mem32\" }", "", ""),
		     "bars[0].size: 3000 is not a power of two");
	refused_with(text_of("{ \"index\": 0, \"size\": 512, \"type\": \"io\" }", "", ""),
		     "bars[0].size: 512 is outside the sizes of an io BAR (4-256 bytes)");
	refused_with(text_of("{ \"index\": 0, \"size\": \"0x100000000\", \"type\": \"mem32\" }", "", ""),
		     "bars[0].size: 0x100000000 is outside the sizes of a mem32 BAR");
	refused_with(text_of("{ \"index\": 0, \"size\": 16, \"type\": \"mem16\" }", "", ""),
		     "bars[0].type: \"mem16\" is not one of mem32, mem64, io");
	refused_with(text_of("{ \"index\": 0, \"size\": 16, \"type\": \"io\", \"prefetchable\": true }", "", ""),
		     "bars[0].prefetchable: an io BAR cannot be prefetchable");
}

#define MSIX(tb, to, pb, po, n)                                                              \
	"{ \"id\": \"msix\", \"offset\": \"0x40\", \"vectors\": " #n ", \"table_bar\": " #tb \
	", \"table_offset\": " #to ", \"pba_bar\": " #pb ", \"pba_offset\": " #po " }"

static void msix_table_or_pba_outside_their_bar(void **state)
{
	(void)state;
	refused_with(text_of(TWO_BARS, MSIX(1, 2048, 0, 0, 129), ""),
		     "capabilities[0] (msix): the table (129 vectors, 2064 bytes at 0x800) does not fit in BAR 1 (4096 bytes)");
	refused_with(text_of(TWO_BARS, MSIX(1, 0, 0, 4096, 1), ""),
		     "capabilities[0] (msix): the PBA (8 bytes at 0x1000) does not fit in BAR 0 (4096 bytes)");
	refused_with(text_of(TWO_BARS, MSIX(1, 0, 1, 1024, 128), ""),
		     "capabilities[0] (msix): the table (0x0-0x7ff) and the PBA (0x400-0x40f) overlap in BAR 1");
	refused_with(text_of(TWO_BARS, MSIX(2, 0, 1, 2048, 1), ""),
		     "capabilities[0].table_bar: BAR 2 is not declared in bars");
	refused_with(text_of(TWO_BARS, MSIX(1, 4, 1, 2048, 1), ""),
		     "capabilities[0].table_offset: 4 is not 8-byte aligned");
	refused_with(text_of("{ \"index\": 0, \"size\": 4096, \"type\": \"mem32\" },"
			     "{ \"index\": 1, \"size\": 64, \"type\": \"io\" }", MSIX(0, 0, 1, 0, 1), ""),
		     "capabilities[0].pba_bar: BAR 1 is an io BAR; MSI-X needs a memory BAR");
	refused_with(text_of("{ \"index\": 0, \"size\": 4096, \"type\": \"mem64\" }", MSIX(0, 0, 1, 0, 1), ""),
		     "capabilities[0].pba_bar: slot 1 is the upper half of the 64-bit BAR 0");
}

static void duplicate_capability_where_only_one_is_allowed(void **state)
{
	(void)state;
	refused_with(text_of(TWO_BARS, "{ \"id\": \"pm\", \"offset\": \"0x40\" },"
				       "{ \"id\": \"pm\", \"offset\": \"0x48\" }", ""),
		     "capabilities[1] (pm): a second pm capability (capabilities[0] is one); only one is allowed");
	refused_with(text_of(TWO_BARS, "", "{ \"id\": \"dsn\", \"offset\": \"0x100\", \"serial\": 1 },"
					   "{ \"id\": \"dsn\", \"offset\": \"0x110\", \"serial\": 2 }"),
		     "extended_capabilities[1] (dsn): a second dsn capability (extended_capabilities[0] is one)");
	/* Vendor-specific and raw ones may repeat. */
	struct devmig_profile *p = parse(text_of(TWO_BARS,
		"{ \"id\": \"vendor\", \"offset\": \"0x40\" }, { \"id\": \"vendor\", \"offset\": \"0x44\" },"
		"{ \"id\": 18, \"offset\": \"0x48\" }, { \"id\": 18, \"offset\": \"0x4c\" }", ""));
	if (!p)
		fail_msg("%s", err);
	devmig_profile_free(p);
}

static void unknown_capability_name(void **state)
{
	(void)state;
	refused_with(text_of(TWO_BARS, "{ \"id\": \"msx\", \"offset\": \"0x40\", \"vectors\": 1 }", ""),
		     "capabilities[0].id: unknown capability \"msx\" (known: pm, msi, msix, pcie, vendor, or a number for a raw one)");
	refused_with(text_of(TWO_BARS, "{ \"id\": \"dsn\", \"offset\": \"0x40\" }", ""),
		     "capabilities[0].id: \"dsn\" is an extended capability: list it in extended_capabilities");
	refused_with(text_of(TWO_BARS, "", "{ \"id\": \"pcie\", \"offset\": \"0x100\" }"),
		     "extended_capabilities[0].id: \"pcie\" is a standard capability: list it in capabilities");
	refused_with(text_of(TWO_BARS, "{ \"id\": 17, \"offset\": \"0x40\" }", ""),
		     "capabilities[0].id: 17 is the msix capability: write \"id\": \"msix\"");
	refused_with(text_of(TWO_BARS, "", "{ \"id\": 0, \"version\": 1, \"offset\": \"0x100\" }"),
		     "extended_capabilities[0].id: 0 is out of range (1-65535)");
}

static void unknown_member_is_a_mistake(void **state)
{
	(void)state;
	refused_with("{ \"vendor\": 1, \"device\": 1, \"class\": 0, \"clas\": 1 }",
		     "clas: unknown member of the profile (expected vendor, device,");
	refused_with(text_of(TWO_BARS, "{ \"id\": \"pm\", \"offset\": \"0x40\", \"vectors\": 1 }", ""),
		     "capabilities[0].vectors: unknown member of a pm capability (expected id, offset)");
	refused_with(text_of("{ \"index\": 0, \"size\": 16, \"type\": \"mem32\", \"prefetch\": true }", "", ""),
		     "bars[0].prefetch: unknown member of a BAR (expected index, size, type, prefetchable)");
}

static void json_syntax_errors_say_where(void **state)
{
	(void)state;
	refused_with("{ \"vendor\": 1,\n  \"device\": 1 x }", "profile: JSON syntax error at line 2, column");
	refused_with("{ \"vendor\": 1,", "profile: the JSON text ends early");
	refused_with("{ \"vendor\": 1 } trailing", "profile: JSON syntax error at line 1");
	assert_null(devmig_profile_parse("{ \"vendor\": 1 }\0{", 17, err, sizeof(err)));
	assert_non_null(strstr(err, "profile: byte 15: a NUL byte inside the JSON text"));
	refused_with("", "profile: the JSON text ends early");
	/* Comments and trailing commas are not JSON. */
	refused_with("/* a comment */ { \"vendor\": 1 }", "profile: JSON syntax error at line 1, column 1");
	refused_with("{ \"vendor\": 1, }", "profile: JSON syntax error at line 1");
}

static void every_mistake_is_reported_one_per_line(void **state)
{
	(void)state;
	const char *text =
		"{ \"vendor\": \"0xffff\", \"device\": 70000, \"clas\": 1,\n"
		"  \"bars\": [ { \"index\": 0, \"size\": 3000, \"type\": \"mem32\" } ],\n"
		"  \"capabilities\": [ { \"id\": \"pm\", \"offset\": \"0x42\" },\n"
		"                    { \"id\": \"msx\", \"offset\": \"0x50\" } ] }";
	static const char *const want[] = {
		"clas: unknown member", "vendor: 0xffff is refused", "device: 70000 is out of range",
		"class: missing", "bars[0].size: 3000 is not a power of two",
		"capabilities[0].offset: 0x42 is not 4-byte aligned",
		"capabilities[1].id: unknown capability \"msx\"",
	};

	assert_null(parse(text));
	assert_int_equal(lines(err), sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(err, want[i]))
			fail_msg("missing \"%s\" in:\n%s", want[i], err);
	/* A short buffer is cut, never overrun. */
	char small[16];
	memset(small, 'x', sizeof(small));
	assert_null(devmig_profile_parse(text, strlen(text), small, 10));
	assert_int_equal(strlen(small), 9);
	assert_int_equal(small[10], 'x');
}

static void oversized_input_is_refused(void **state)
{
	(void)state;
	size_t n = (1u << 20) + 1;
	char *big = malloc(n);

	memset(big, ' ', n);
	assert_null(devmig_profile_parse(big, n, err, sizeof(err)));
	assert_non_null(strstr(err, "profile: 1048577 bytes, at most 1048576"));
	free(big);
}

/* ---- build and dump --------------------------------------------------------- */

/* Every kind the builder supports, out of address order, with a null extended header. */
static const char *const everything =
	"{ \"vendor\": \"0x8086\", \"device\": \"0x1234\", \"subsystem_vendor\": \"0x8086\",\n"
	"  \"subsystem\": 7, \"class\": \"0x010802\", \"revision\": 2, \"interrupt_pin\": 1,\n"
	"  \"bars\": [ { \"index\": 0, \"size\": \"0x4000\", \"type\": \"mem64\", \"prefetchable\": true },\n"
	"            { \"index\": 2, \"size\": 16, \"type\": \"io\" },\n"
	"            { \"index\": 3, \"size\": 8192, \"type\": \"mem32\" } ],\n"
	"  \"capabilities\": [\n"
	"    { \"id\": \"msi\", \"offset\": \"0x80\", \"vectors\": 8, \"64bit\": true, \"maskable\": true },\n"
	"    { \"id\": 18, \"offset\": \"0x40\", \"data\": \"0a0b00\" },\n"
	"    { \"id\": 19, \"offset\": \"0x48\" },\n"
	"    { \"id\": \"vendor\", \"offset\": \"0xa0\", \"data\": \"de ad be ef 00\" },\n"
	"    { \"id\": \"pm\", \"offset\": \"0xfc\" } ],\n"
	"  \"extended_capabilities\": [\n"
	"    { \"id\": 11, \"version\": 1, \"offset\": \"0x180\", \"data\": \"0100000002\" },\n"
	"    { \"id\": \"pasid\", \"offset\": \"0x200\", \"max_width\": 16, \"exec\": true, \"priv\": true },\n"
	"    { \"id\": 42, \"version\": 0, \"offset\": \"0x150\" },\n"
	"    { \"id\": \"dsn\", \"offset\": \"0xff0\", \"serial\": 18446744073709551615 } ] }\n";

static void build_follows_the_profile(void **state)
{
	(void)state;
	struct devmig_profile *p = parse(everything);
	uint8_t b[DEVMIG_PCI_CFG_SIZE];
	uint64_t sizes[DEVMIG_PCI_NUM_BARS];

	if (!p) {
		/* pm at 0xfc needs 8 bytes: the one mistake expected here. */
		assert_non_null(strstr(err, "capabilities[4] (pm at 0xfc): its 8 bytes do not fit"));
		assert_int_equal(lines(err), 1);
	}
	assert_null(p);
	char *fixed = strdup(everything);
	memcpy(strstr(fixed, "\"0xfc\""), "\"0xf0\"", 6);
	p = parse(fixed);
	free(fixed);
	if (!p)
		fail_msg("%s", err);
	struct devmig_pci_config *cfg = build(p);
	read_all(cfg, b, sizes);
	assert_int_equal(b[PCI_VENDOR_ID] | b[PCI_VENDOR_ID + 1] << 8, 0x8086);
	assert_int_equal(b[PCI_SUBSYSTEM_ID], 7);
	assert_int_equal(b[PCI_CLASS_PROG] | b[PCI_CLASS_DEVICE] << 8 | b[PCI_CLASS_DEVICE + 1] << 16,
			 0x010802);
	assert_int_equal(b[PCI_REVISION_ID], 2);
	assert_int_equal(b[PCI_INTERRUPT_PIN], 1);
	assert_int_equal(sizes[0], 0x4000);
	assert_int_equal(sizes[2], 16);
	assert_int_equal(b[PCI_BASE_ADDRESS_0], 0x0c); /* 64-bit prefetchable */
	assert_int_equal(b[PCI_BASE_ADDRESS_2], 0x01);
	/* The chain follows the list, not the addresses. */
	assert_int_equal(b[PCI_CAPABILITY_LIST], 0x80);
	assert_int_equal(b[0x81], 0x40);
	assert_int_equal(b[0x41], 0x48);
	assert_int_equal(b[0x49], 0xa0);
	assert_int_equal(b[0xa1], 0xf0);
	assert_int_equal(b[0xf1], 0);
	/* Raw: our ID and bytes exactly; vendor: its length byte. */
	assert_int_equal(b[0x40], 18);
	assert_int_equal(b[0x42], 0x0a);
	assert_int_equal(b[0x43], 0x0b);
	assert_int_equal(b[0x48], 19);
	assert_int_equal(b[0x4a], 0);
	assert_int_equal(b[0xa2], 8);
	assert_int_equal(b[0xa3], 0xde);
	/* Extended: the null header at 0x100 leads to the first one. */
	uint32_t h;
	memcpy(&h, b + 0x100, 4);
	assert_int_equal(h, 0x180u << 20);
	memcpy(&h, b + 0x180, 4);
	assert_int_equal(h, 11u | 1u << 16 | 0x200u << 20);
	assert_int_equal(devmig_pcicfg_find_cap(cfg, PCI_EXT_CAP_ID_PASID, true), 0x200);
	assert_int_equal(devmig_pcicfg_find_cap(cfg, PCI_EXT_CAP_ID_DSN, true), 0xff0);
	memcpy(&h, b + 0xff4, 4);
	assert_int_equal(h, 0xffffffffu);
	round_trip(cfg);
	devmig_pcicfg_destroy(cfg);
	devmig_profile_free(p);
}

static void one_profile_builds_identical_configs(void **state)
{
	(void)state;
	struct devmig_profile *p = load_sample("memblk-fleet.json");
	struct devmig_pci_config *a = build(p), *b = build(p);
	uint8_t x[DEVMIG_PCI_CFG_SIZE], y[DEVMIG_PCI_CFG_SIZE];
	uint64_t sx[DEVMIG_PCI_NUM_BARS], sy[DEVMIG_PCI_NUM_BARS];

	read_all(a, x, sx);
	read_all(b, y, sy);
	assert_memory_equal(x, y, sizeof(x));
	assert_true(devmig_pcicfg_fingerprint(a) == devmig_pcicfg_fingerprint(b));
	devmig_pcicfg_destroy(a);
	devmig_pcicfg_destroy(b);
	devmig_profile_free(p);
}

static void sample_profiles_round_trip(void **state)
{
	(void)state;
	static const char *const names[] = { "memblk-fleet.json", "counter-fleet.json" };

	for (size_t i = 0; i < 2; i++) {
		struct devmig_profile *p = load_sample(names[i]);
		struct devmig_pci_config *cfg = build(p);
		round_trip(cfg);
		devmig_pcicfg_destroy(cfg);
		devmig_profile_free(p);
	}
}

static void dump_refuses_a_looping_chain(void **state)
{
	(void)state;
	uint8_t b[DEVMIG_PCI_CFG_SIZE] = { 0 };
	uint64_t sizes[DEVMIG_PCI_NUM_BARS] = { 0 };

	b[PCI_STATUS] = PCI_STATUS_CAP_LIST;
	b[PCI_CAPABILITY_LIST] = 0x40;
	b[0x40] = PCI_CAP_ID_PM;
	b[0x41] = 0x48;
	b[0x48] = PCI_CAP_ID_MSI;
	b[0x49] = 0x40;
	assert_null(devmig_profile_dump(b, sizes, err, sizeof(err)));
	assert_non_null(strstr(err, "loops back to 0x40"));
	b[0x49] = 0x10;
	assert_null(devmig_profile_dump(b, sizes, err, sizeof(err)));
	assert_non_null(strstr(err, "points into the header"));
	b[0x49] = 0;
	uint32_t h = 11u | 0x100u << 20; /* points to itself */
	memcpy(b + 0x100, &h, 4);
	assert_null(devmig_profile_dump(b, sizes, err, sizeof(err)));
	assert_non_null(strstr(err, "extended capability chain loops back to 0x100"));
}

/* ---- the core hook: devices with different native layouts ---------------- */

#define STATE_LEN 64

struct tdev {
	struct devmig_device dev;
	uint8_t state[STATE_LEN], staged[STATE_LEN];
	bool have_staged;
	struct fx_server fx;
	struct devmig_client *c;
};

static struct tdev *to_tdev(struct devmig_device *dev)
{
	return devmig_container_of(dev, struct tdev, dev);
}

/* Variant A: PM, MSI-X, PCIe placed first-fit. */
static int realize_a(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	(void)dev;
	int rc = devmig_pci_set_ids(cfg, 0x1af4, 0x10fa);
	if (!rc)
		rc = devmig_pci_set_class(cfg, 0xff0000, 1);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 0, 4096, 0);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 1, 4096, 0);
	if (rc >= 0)
		rc = devmig_pci_add_pm(cfg, 0);
	if (rc >= 0)
		rc = devmig_pci_add_msix(cfg, 0, 2, 1, 0, 1, 2048);
	if (rc >= 0)
		rc = devmig_pci_add_pcie(cfg, 0, PCI_EXP_LNKCAP_SLS_2_5GB, 1);
	return rc < 0 ? rc : 0;
}

/* Variant B: same BARs and MSI-X placement, another revision, order and offsets, MSI too. */
static int realize_b(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	(void)dev;
	static const uint8_t vdata[] = { 'B', 1 };
	int rc = devmig_pci_set_ids(cfg, 0x1af4, 0x10fa);
	if (!rc)
		rc = devmig_pci_set_class(cfg, 0xff0000, 3);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 0, 4096, 0);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 1, 4096, 0);
	if (rc >= 0)
		rc = devmig_pci_add_pcie(cfg, 0x40, PCI_EXP_LNKCAP_SLS_8_0GB, 4);
	if (rc >= 0)
		rc = devmig_pci_add_msi(cfg, 0x80, 4, PCI_MSI_FLAGS_64BIT);
	if (rc >= 0)
		rc = devmig_pci_add_msix(cfg, 0xa0, 2, 1, 0, 1, 2048);
	if (rc >= 0)
		rc = devmig_pci_add_vendor_cap(cfg, 0xb0, vdata, sizeof(vdata));
	if (rc >= 0)
		rc = devmig_pci_add_pm(cfg, 0xc8);
	if (rc >= 0)
		rc = devmig_pci_add_dsn(cfg, 0x100, 0xb);
	return rc < 0 ? rc : 0;
}

/* The state, one record, once stopped. */
static int t_save_state(struct devmig_device *dev, struct devmig_save *s)
{
	return devmig_save_record(s, 1, to_tdev(dev)->state, STATE_LEN);
}

static int t_load(struct devmig_device *dev, unsigned type, const void *data, size_t len,
		  char *why, size_t whylen)
{
	struct tdev *t = to_tdev(dev);

	if (type != 1 || len != STATE_LEN) {
		snprintf(why, whylen, "fleet: record %u of %zu bytes", type, len);
		return -EINVAL;
	}
	memcpy(t->staged, data, len);
	t->have_staged = true;
	return 0;
}

static int t_load_check(struct devmig_device *dev, char *why, size_t whylen)
{
	if (to_tdev(dev)->have_staged)
		return 0;
	snprintf(why, whylen, "fleet: no state record");
	return -EINVAL;
}

static void t_load_apply(struct devmig_device *dev)
{
	struct tdev *t = to_tdev(dev);

	memcpy(t->state, t->staged, STATE_LEN);
	t->have_staged = false;
}

static void t_load_abort(struct devmig_device *dev)
{
	to_tdev(dev)->have_staged = false;
}

static const struct devmig_device_id t_id = { .name = "fleet", .version = "fleet-1" };
static const struct devmig_device_ops ops_a = { .realize = realize_a };
static const struct devmig_device_ops ops_b = { .realize = realize_b };
static const struct devmig_migration_ops t_mig = {
	.caps = DEVMIG_MIG_STOP_COPY,
	.save_state = t_save_state,
	.load = t_load,
	.load_check = t_load_check,
	.load_apply = t_load_apply,
	.load_abort = t_load_abort,
};

/* The profile both share: a layout neither has natively. */
static const char *const fleet_profile =
	"{ \"vendor\": \"0x1af4\", \"device\": \"0x10fa\", \"subsystem_vendor\": \"0x1af4\",\n"
	"  \"subsystem\": \"0x0100\", \"class\": \"0xff0000\", \"revision\": 2,\n"
	"  \"bars\": [ { \"index\": 0, \"size\": 4096, \"type\": \"mem32\" },\n"
	"            { \"index\": 1, \"size\": 4096, \"type\": \"mem32\" } ],\n"
	"  \"capabilities\": [\n"
	"    { \"id\": \"pm\", \"offset\": \"0x40\" },\n"
	"    { \"id\": \"msix\", \"offset\": \"0x48\", \"vectors\": 2, \"table_bar\": 1,\n"
	"      \"table_offset\": 0, \"pba_bar\": 1, \"pba_offset\": 2048 },\n"
	"    { \"id\": \"pcie\", \"offset\": \"0x60\", \"link_speed\": 2, \"link_width\": 4 } ],\n"
	"  \"extended_capabilities\": [\n"
	"    { \"id\": \"dsn\", \"offset\": \"0x100\", \"serial\": \"0x1122334455667788\" } ] }\n";

struct fx {
	char dir[FX_PATH_MAX];
	struct tdev a, b;
};

static void dev_init(struct tdev *t, const struct devmig_device_ops *ops, uint8_t fill)
{
	memset(t, 0, sizeof(*t));
	memset(t->state, fill, STATE_LEN);
	t->dev.id = &t_id;
	t->dev.ops = ops;
	t->dev.mig = &t_mig;
	assert_int_equal(devmig_device_init(&t->dev), 0);
}

static void apply(struct tdev *t, const char *text)
{
	struct devmig_profile *p = parse(text);

	if (!p)
		fail_msg("%s", err);
	if (devmig_device_set_profile(&t->dev, p, err, sizeof(err)))
		fail_msg("set_profile: %s", err);
	devmig_profile_free(p);
}

static void serve(struct fx *f, struct tdev *t, const char *name)
{
	fx_serve(&t->fx, f->dir, name, &t->dev);
	t->c = fx_connect(&t->fx, NULL);
}

static void unserve(struct tdev *t)
{
	devmig_client_close(t->c);
	fx_unserve(&t->fx);
	devmig_device_destroy(&t->dev);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	fx_tmpdir(f->dir, "profile");
	dev_init(&f->a, &ops_a, 0x11);
	dev_init(&f->b, &ops_b, 0x22);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	unserve(&f->a);
	unserve(&f->b);
	fx_rmdir(f->dir);
	free(f);
	return 0;
}

static void config_of(struct tdev *t, uint8_t *buf)
{
	assert_int_equal(devmig_client_region_read(t->c, CONFIG_REGION, 0, buf, DEVMIG_PCI_CFG_SIZE), 0);
}

/* src -> dst by STOP_COPY and RESUMING; 0, or the load error with reason filled. */
static int migrate(struct tdev *src, struct tdev *dst, char *reason, size_t rlen)
{
	struct fx_buf st = { 0 };

	assert_int_equal(devmig_client_set_state(src->c, DEVMIG_STATE_STOP_COPY), 0);
	fx_buf_read_stream(&st, src->c, 4096);
	assert_int_equal(devmig_client_set_state(dst->c, DEVMIG_STATE_RESUMING), 0);
	int rc = devmig_client_mig_write(dst->c, st.p, st.len);
	fx_buf_free(&st);
	if (!rc)
		rc = devmig_client_set_state(dst->c, DEVMIG_STATE_RUNNING);
	if (rc) {
		uint64_t bytes;
		int load_error;
		assert_int_equal(devmig_client_mig_status(dst->c, &bytes, &load_error, reason, rlen), 0);
		assert_int_equal(devmig_client_reset(dst->c), 0);
	}
	assert_int_equal(devmig_client_set_state(src->c, DEVMIG_STATE_RUNNING), 0);
	return rc;
}

static void without_a_profile_the_layouts_differ_and_migration_is_refused(void **state)
{
	struct fx *f = *state;
	uint8_t x[DEVMIG_PCI_CFG_SIZE], y[DEVMIG_PCI_CFG_SIZE];
	char reason[512] = "";

	serve(f, &f->a, "a");
	serve(f, &f->b, "b");
	config_of(&f->a, x);
	config_of(&f->b, y);
	assert_memory_not_equal(x, y, sizeof(x));
	assert_int_equal(migrate(&f->a, &f->b, reason, sizeof(reason)), -EINVAL);
	if (!strstr(reason, "config space differs"))
		fail_msg("reason: %s", reason);
	assert_memory_not_equal(f->a.state, f->b.state, STATE_LEN);
}

static void with_one_profile_both_present_the_same_config_and_migrate(void **state)
{
	struct fx *f = *state;
	uint8_t x[DEVMIG_PCI_CFG_SIZE], y[DEVMIG_PCI_CFG_SIZE];
	char reason[512] = "";

	apply(&f->a, fleet_profile);
	apply(&f->b, fleet_profile);
	serve(f, &f->a, "a");
	serve(f, &f->b, "b");
	config_of(&f->a, x);
	config_of(&f->b, y);
	assert_memory_equal(x, y, sizeof(x));
	assert_int_equal(x[PCI_CAPABILITY_LIST], 0x40);
	assert_int_equal(x[PCI_REVISION_ID], 2);

	/* The guest programs A; B takes that state, then B migrates back to A. */
	uint16_t cmd = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	uint16_t msix = PCI_MSIX_FLAGS_ENABLE;
	assert_int_equal(devmig_client_region_write(f->a.c, CONFIG_REGION, PCI_COMMAND, &cmd, 2), 0);
	assert_int_equal(devmig_client_region_write(f->a.c, CONFIG_REGION, 0x48 + PCI_MSIX_FLAGS, &msix, 2), 0);
	if (migrate(&f->a, &f->b, reason, sizeof(reason)))
		fail_msg("A -> B refused: %s", reason);
	assert_memory_equal(f->a.state, f->b.state, STATE_LEN);
	config_of(&f->a, x);
	config_of(&f->b, y);
	assert_memory_equal(x, y, sizeof(x));
	assert_int_equal(y[0x48 + PCI_MSIX_FLAGS + 1] & (PCI_MSIX_FLAGS_ENABLE >> 8), PCI_MSIX_FLAGS_ENABLE >> 8);

	memset(f->b.state, 0x5a, STATE_LEN);
	if (migrate(&f->b, &f->a, reason, sizeof(reason)))
		fail_msg("B -> A refused: %s", reason);
	assert_memory_equal(f->a.state, f->b.state, STATE_LEN);
}

static void profile_with_other_bars_is_refused_and_the_device_keeps_its_config(void **state)
{
	struct fx *f = *state;
	uint8_t x[DEVMIG_PCI_CFG_SIZE], want[DEVMIG_PCI_CFG_SIZE];
	uint64_t sizes[DEVMIG_PCI_NUM_BARS];
	char *text = strdup(fleet_profile);

	/* BAR 0 of 8 KiB instead of 4. */
	memcpy(strstr(text, "4096"), "8192", 4);
	struct devmig_profile *p = parse(text);
	if (!p)
		fail_msg("%s", err);
	assert_int_equal(devmig_device_set_profile(&f->a.dev, p, err, sizeof(err)), -EINVAL);
	if (!strstr(err, "BAR 0 differs: the device has 4096 bytes (flags 0), the profile 8192 bytes"))
		fail_msg("%s", err);
	devmig_profile_free(p);

	/* MSI-X elsewhere in its BAR. */
	memcpy(strstr(text, "8192"), "4096", 4);
	memcpy(strstr(text, "2048"), "3072", 4);
	p = parse(text);
	if (!p)
		fail_msg("%s", err);
	assert_int_equal(devmig_device_set_profile(&f->a.dev, p, err, sizeof(err)), -EINVAL);
	if (!strstr(err, "MSI-X differs: the device has 2 vectors (table 0x1, PBA 0x801), the profile 2 (table 0x1, PBA 0xc01)"))
		fail_msg("%s", err);
	devmig_profile_free(p);
	free(text);

	/* What the device serves is still what its realize() described. */
	struct devmig_pci_config *own = devmig_pcicfg_create(NULL, NULL);
	assert_int_equal(realize_a(NULL, own), 0);
	devmig_pcicfg_seal(own);
	read_all(own, want, sizes);
	serve(f, &f->a, "a");
	serve(f, &f->b, "b");
	config_of(&f->a, x);
	assert_memory_equal(x, want, sizeof(x));
	devmig_pcicfg_destroy(own);
}

/* The dump of a device's own config is a profile it accepts, served unchanged. */
static void a_device_accepts_the_dump_of_its_own_config(void **state)
{
	struct fx *f = *state;
	uint8_t x[DEVMIG_PCI_CFG_SIZE], y[DEVMIG_PCI_CFG_SIZE];
	uint64_t sizes[DEVMIG_PCI_NUM_BARS] = { 0 };

	serve(f, &f->b, "b");
	config_of(&f->b, x);
	for (uint32_t bar = 0; bar < DEVMIG_PCI_NUM_BARS; bar++) {
		struct devmig_region_info ri = { 0 };
		unsigned nareas = 0;
		int fd = -1;
		assert_int_equal(devmig_client_region_info(f->b.c, bar, &ri, &fd, NULL, &nareas), 0);
		if (fd >= 0)
			close(fd);
		sizes[bar] = ri.size;
	}
	char *text = devmig_profile_dump(x, sizes, err, sizeof(err));
	if (!text)
		fail_msg("%s", err);
	apply(&f->a, text);
	free(text);
	serve(f, &f->a, "a");
	config_of(&f->a, y);
	assert_memory_equal(x, y, sizeof(x));
}

/* The sample profiles fit the memblk and counter devices (their realize() copied here). */
static int realize_memblk(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	(void)dev;
	int rc = devmig_pci_set_ids(cfg, 0x1af4, 0x10f1);
	if (!rc)
		rc = devmig_pci_set_class(cfg, 0x018000, 1);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 0, 4096, 0);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 1, 4096, 0);
	if (rc >= 0)
		rc = devmig_pci_add_pm(cfg, 0);
	if (rc >= 0)
		rc = devmig_pci_add_msix(cfg, 0, 1, 1, 0, 1, 2048);
	if (rc >= 0)
		rc = devmig_pci_add_pcie(cfg, 0, PCI_EXP_LNKCAP_SLS_8_0GB, 4);
	return rc < 0 ? rc : 0;
}

static int realize_counter(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	(void)dev;
	int rc = devmig_pci_set_ids(cfg, 0x1af4, 0x10f0);
	if (!rc)
		rc = devmig_pci_set_class(cfg, 0xff0000, 1);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 0, 4096, 0);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 1, 4096, 0);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 2, 8192, 0);
	if (rc >= 0)
		rc = devmig_pci_add_pm(cfg, 0);
	if (rc >= 0)
		rc = devmig_pci_add_msix(cfg, 0, 1, 1, 0, 1, 2048);
	if (rc >= 0)
		rc = devmig_pci_add_pcie(cfg, 0, PCI_EXP_LNKCAP_SLS_2_5GB, 1);
	return rc < 0 ? rc : 0;
}

static void sample_profiles_fit_their_devices(void **state)
{
	(void)state;
	static const struct devmig_device_id mb_id = { .name = "memblk", .version = "m" };
	static const struct devmig_device_id ctr_id = { .name = "counter", .version = "c" };
	static const struct devmig_device_ops mb = { .realize = realize_memblk };
	static const struct devmig_device_ops ctr = { .realize = realize_counter };
	static const struct {
		const struct devmig_device_id *id;
		const struct devmig_device_ops *ops;
		const char *file;
	} cases[] = { { &mb_id, &mb, "memblk-fleet.json" }, { &ctr_id, &ctr, "counter-fleet.json" } };

	for (size_t i = 0; i < 2; i++) {
		struct devmig_device dev = { .id = cases[i].id, .ops = cases[i].ops };
		struct devmig_profile *p = load_sample(cases[i].file);
		assert_int_equal(devmig_device_init(&dev), 0);
		if (devmig_device_set_profile(&dev, p, err, sizeof(err)))
			fail_msg("%s: %s", cases[i].file, err);
		devmig_device_destroy(&dev);
		devmig_profile_free(p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepts_a_complete_profile),
		cmocka_unit_test(wrong_type_names_the_member),
		cmocka_unit_test(out_of_range_names_the_member),
		cmocka_unit_test(missing_member_is_named),
		cmocka_unit_test(unaligned_offset),
		cmocka_unit_test(overlap_names_both_capabilities),
		cmocka_unit_test(standard_capability_outside_its_area),
		cmocka_unit_test(extended_capability_outside_its_area),
		cmocka_unit_test(capability_too_long_for_the_space),
		cmocka_unit_test(bar_slot_taken_by_upper_half),
		cmocka_unit_test(bar_size_not_a_power_of_two),
		cmocka_unit_test(msix_table_or_pba_outside_their_bar),
		cmocka_unit_test(duplicate_capability_where_only_one_is_allowed),
		cmocka_unit_test(unknown_capability_name),
		cmocka_unit_test(unknown_member_is_a_mistake),
		cmocka_unit_test(json_syntax_errors_say_where),
		cmocka_unit_test(every_mistake_is_reported_one_per_line),
		cmocka_unit_test(oversized_input_is_refused),
		cmocka_unit_test(build_follows_the_profile),
		cmocka_unit_test(one_profile_builds_identical_configs),
		cmocka_unit_test(sample_profiles_round_trip),
		cmocka_unit_test(dump_refuses_a_looping_chain),
		cmocka_unit_test(sample_profiles_fit_their_devices),
		cmocka_unit_test_setup_teardown(
			without_a_profile_the_layouts_differ_and_migration_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(
			with_one_profile_both_present_the_same_config_and_migrate, setup, teardown),
		cmocka_unit_test_setup_teardown(
			profile_with_other_bars_is_refused_and_the_device_keeps_its_config, setup,
			teardown),
		cmocka_unit_test_setup_teardown(a_device_accepts_the_dump_of_its_own_config, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
