/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: devmig_profile_parse on the input. A profile it accepts must
 * build (the validator checks all the builder does), and the built config
 * must survive devmig_profile_dump, a second parse and a second build
 * byte for byte, masks included (same fingerprint). The input read as
 * 4096 config bytes must dump without harm, and that dump build if it parses.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devmig/profile.h"
#include "pci_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what, const char *text)
{
	if (!cond) {
		fprintf(stderr, "fuzz check failed: %s\n%s\n", what, text ? text : "");
		abort();
	}
}

static struct devmig_pci_config *build(const struct devmig_profile *p, char *err, size_t errlen)
{
	struct devmig_pci_config *cfg = devmig_pcicfg_create(NULL, NULL);

	check(cfg != NULL, "out of memory", NULL);
	check(devmig_profile_build(p, cfg, err, errlen) == 0, "a parsed profile does not build", err);
	devmig_pcicfg_seal(cfg);
	return cfg;
}

/* The input as config bytes: the dump never crashes, and what it writes builds if it parses. */
static void dump_raw(const uint8_t *data, size_t size, char *err, size_t errlen)
{
	uint8_t cfg[DEVMIG_PCI_CFG_SIZE] = { 0 };
	uint64_t sizes[DEVMIG_PCI_NUM_BARS] = { 4096, 0, 16, 1u << 20, 0, 256 };

	memcpy(cfg, data, size < sizeof(cfg) ? size : sizeof(cfg));
	char *text = devmig_profile_dump(cfg, sizes, err, errlen);
	if (!text)
		return;
	struct devmig_profile *p = devmig_profile_parse(text, strlen(text), err, errlen);
	if (p)
		devmig_pcicfg_destroy(build(p, err, errlen));
	devmig_profile_free(p);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char err[32 * 1024];

	dump_raw(data, size, err, sizeof(err));
	struct devmig_profile *p = devmig_profile_parse((const char *)data, size, err, sizeof(err));

	if (!p) {
		check(err[0] != '\0', "refused without a reason", NULL);
		return 0;
	}
	struct devmig_pci_config *a = build(p, err, sizeof(err));
	devmig_profile_free(p);

	uint8_t bytes[DEVMIG_PCI_CFG_SIZE], again[DEVMIG_PCI_CFG_SIZE];
	uint64_t sizes[DEVMIG_PCI_NUM_BARS] = { 0 };
	devmig_pcicfg_read(a, 0, bytes, sizeof(bytes));
	for (unsigned b = 0; b < DEVMIG_PCI_NUM_BARS; b++)
		devmig_pcicfg_bar_info(a, b, &sizes[b], NULL);
	char *text = devmig_profile_dump(bytes, sizes, err, sizeof(err));
	check(text != NULL, "a built config does not dump", err);
	p = devmig_profile_parse(text, strlen(text), err, sizeof(err));
	check(p != NULL, "the dump of a built config does not parse", err);
	struct devmig_pci_config *b = build(p, err, sizeof(err));
	devmig_pcicfg_read(b, 0, again, sizeof(again));
	check(!memcmp(bytes, again, sizeof(bytes)), "dump, parse, build changed the bytes", text);
	check(devmig_pcicfg_fingerprint(a) == devmig_pcicfg_fingerprint(b),
	      "dump, parse, build changed the fingerprint", text);
	devmig_profile_free(p);
	free(text);
	devmig_pcicfg_destroy(a);
	devmig_pcicfg_destroy(b);
	return 0;
}
