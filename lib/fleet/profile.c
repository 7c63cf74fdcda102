/* SPDX-License-Identifier: MIT */
/*
 * Profiles (devmig/profile.h): parse and validate a JSON description of a
 * config space, build it with the <devmig/pci.h> builder, and dump an
 * existing config space back into one.
 *
 * The validator checks everything the builder would refuse, so a profile
 * that parses always builds (fuzz/fuzz_profile.c asserts it), and it
 * reports every mistake at once rather than the first. A standard
 * capability the builder has no adder for (a raw one: numeric "id") is
 * placed as a vendor-specific capability of the same size whose ID and
 * bytes are then stored over it, so its bytes are exactly the profile's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "devmig/profile.h"

#define PROFILE_MAX_LEN (1u << 20)
#define PROFILE_MAX_DEPTH 16
#define MAX_CAPS 64 /* the builder's table: both chains and the null extended header */
#define MAX_MISTAKES 100
#define MISTAKE_LEN 400

#define CFG_SIZE DEVMIG_PCI_CFG_SIZE
#define STD_START 0x40u
#define STD_END 0x100u
#define EXT_START 0x100u
#define EXT_END 0x1000u
#define PCIE_CAP_SIZE 0x3cu /* as the builder lays it out (version 2) */
#define MSIX_MAX 2048u

enum kind {
	K_PM,
	K_MSI,
	K_MSIX,
	K_PCIE,
	K_VENDOR,
	K_RAW, /* standard, numeric id */
	K_PASID,
	K_DSN,
	K_RAW_EXT, /* extended, numeric id */
};

static const char *const kind_name[] = {
	[K_PM] = "pm",       [K_MSI] = "msi",     [K_MSIX] = "msix",
	[K_PCIE] = "pcie",   [K_VENDOR] = "vendor", [K_RAW] = "raw",
	[K_PASID] = "pasid", [K_DSN] = "dsn",     [K_RAW_EXT] = "raw",
};

/* Members each kind takes besides "id" and "offset" (NULL-terminated). */
static const char *const kind_members[][6] = {
	[K_PM] = { NULL },
	[K_MSI] = { "vectors", "64bit", "maskable", NULL },
	[K_MSIX] = { "vectors", "table_bar", "table_offset", "pba_bar", "pba_offset", NULL },
	[K_PCIE] = { "link_speed", "link_width", NULL },
	[K_VENDOR] = { "data", NULL },
	[K_RAW] = { "data", NULL },
	[K_PASID] = { "max_width", "exec", "priv", NULL },
	[K_DSN] = { "serial", NULL },
	[K_RAW_EXT] = { "version", "data", NULL },
};

struct pcap {
	enum kind kind;
	bool known;    /* kind parsed: the checks across capabilities apply */
	bool ext;
	bool placed;   /* offset valid and the capability fits: overlap checks apply */
	unsigned off;
	unsigned size; /* bytes reserved, rounded up to 4 as the builder does */
	uint16_t id;   /* raw ones */
	uint8_t version;
	unsigned vectors;
	bool is64, maskable;                /* msi */
	unsigned table_bar, pba_bar;        /* msix */
	uint32_t table_off, pba_off;
	unsigned speed, width;              /* pcie */
	unsigned max_width;                 /* pasid */
	bool exec, priv;
	uint64_t serial;                    /* dsn */
	uint8_t *data;                      /* vendor, raw */
	size_t len;
};

struct pbar {
	bool used;
	uint64_t size;
	unsigned flags;
};

struct devmig_profile {
	uint16_t vendor, device, subsys_vendor, subsys;
	uint32_t class_code;
	uint8_t revision, pin;
	struct pbar bar[DEVMIG_PCI_NUM_BARS];
	struct pcap *cap; /* standard then extended, each in chain order */
	unsigned ncap, nstd;
};

/* ---- mistakes ----------------------------------------------------------- */

struct mistakes {
	char *buf;
	size_t len, cap;
	unsigned n, dropped;
};

static void add_line(struct mistakes *m, const char *line)
{
	size_t l = strlen(line);

	if (m->len + l + 2 > m->cap) {
		size_t ncap = (m->len + l + 2) * 2;
		char *nb = realloc(m->buf, ncap);
		if (!nb) {
			m->dropped++;
			return;
		}
		m->buf = nb;
		m->cap = ncap;
	}
	if (m->len)
		m->buf[m->len++] = '\n';
	memcpy(m->buf + m->len, line, l + 1);
	m->len += l;
	m->n++;
}

__attribute__((format(printf, 2, 3)))
static void mistake(struct mistakes *m, const char *fmt, ...)
{
	char line[MISTAKE_LEN];
	va_list ap;

	if (m->n >= MAX_MISTAKES) {
		m->dropped++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	add_line(m, line);
}

/* Hand the mistakes to the caller's err; true if there were any. */
static bool mistakes_out(struct mistakes *m, char *err, size_t errlen)
{
	bool any = m->n || m->dropped;
	char line[64];

	if (m->dropped) {
		snprintf(line, sizeof(line), "(%u more mistakes not shown)", m->dropped);
		add_line(m, line);
	}
	if (err && errlen)
		snprintf(err, errlen, "%s", m->buf ? m->buf : "");
	free(m->buf);
	m->buf = NULL;
	return any;
}

/* A member name or string value fit for a message: printable, bounded. */
static const char *shown(const char *s, char *buf, size_t len)
{
	size_t i = 0;

	for (; s[i] && i + 4 < len; i++)
		buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (s[i]) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

/* What a JSON value is, for "expected X, got Y". */
static const char *what_is(json_object *v, char *buf, size_t len)
{
	char tmp[48];

	switch (json_object_get_type(v)) {
	case json_type_null: return "null";
	case json_type_boolean: return json_object_get_boolean(v) ? "true" : "false";
	case json_type_double:
		snprintf(buf, len, "the number %s", json_object_to_json_string(v));
		return buf;
	case json_type_int:
		snprintf(buf, len, "the integer %s", json_object_to_json_string(v));
		return buf;
	case json_type_string:
		snprintf(buf, len, "the string \"%s\"", shown(json_object_get_string(v), tmp, sizeof(tmp)));
		return buf;
	case json_type_array: return "an array";
	case json_type_object: return "an object";
	}
	return "something else";
}

/* ---- reading members ---------------------------------------------------- */

struct num {
	uint64_t v;
	bool hex; /* given as "0x..." */
};

static const char *num_str(struct num n, char *buf, size_t len)
{
	if (n.hex)
		snprintf(buf, len, "0x%" PRIx64, n.v);
	else
		snprintf(buf, len, "%" PRIu64, n.v);
	return buf;
}

#define NUMSTR(n) num_str((n), (char[24]){ 0 }, 24)

/* "path.name", or "name" at the top level. */
static const char *member_path(const char *path, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s", path, *path ? "." : "", name);
	return buf;
}

#define MP(path, name) member_path((path), (name), (char[64]){ 0 }, 64)

enum got { GOT_NONE, GOT_OK, GOT_BAD };

static bool parse_hex_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || !s[2])
		return false;
	for (s += 2; *s; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (*s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (*s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return false;
		if (v >> 60)
			return false; /* would overflow */
		v = v << 4 | d;
	}
	*out = v;
	return true;
}

/*
 * Member name of obj as an unsigned number: a JSON integer or a "0x..."
 * string. GOT_NONE when absent (a mistake if required).
 */
static enum got get_num(struct mistakes *m, json_object *obj, const char *path, const char *name,
			bool required, struct num *out)
{
	json_object *v;
	char what[80];

	if (!json_object_object_get_ex(obj, name, &v)) {
		if (required)
			mistake(m, "%s: missing", MP(path, name));
		return GOT_NONE;
	}
	if (json_object_is_type(v, json_type_int)) {
		if (json_object_get_int64(v) < 0) {
			mistake(m, "%s: %s is negative", MP(path, name), json_object_to_json_string(v));
			return GOT_BAD;
		}
		out->v = json_object_get_uint64(v);
		out->hex = false;
		return GOT_OK;
	}
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);
		if (strlen(s) == (size_t)json_object_get_string_len(v) && s[0] == '0' &&
		    (s[1] == 'x' || s[1] == 'X')) {
			if (parse_hex_u64(s, &out->v)) {
				out->hex = true;
				return GOT_OK;
			}
			mistake(m, "%s: \"%s\" is not a hex number below 2^64", MP(path, name),
				shown(s, what, 40));
			return GOT_BAD;
		}
	}
	mistake(m, "%s: expected an integer or a \"0x...\" string, got %s", MP(path, name),
		what_is(v, what, sizeof(what)));
	return GOT_BAD;
}

/* A number in [min, max]; false (with a mistake) otherwise. */
static bool num_in(struct mistakes *m, const char *path, const char *name, struct num n,
		   uint64_t min, uint64_t max)
{
	if (n.v >= min && n.v <= max)
		return true;
	if (n.hex)
		mistake(m, "%s: %s is out of range (0x%" PRIx64 "-0x%" PRIx64 ")", MP(path, name),
			NUMSTR(n), min, max);
	else
		mistake(m, "%s: %s is out of range (%" PRIu64 "-%" PRIu64 ")", MP(path, name),
			NUMSTR(n), min, max);
	return false;
}

/* get_num and num_in together: GOT_OK only for a good value. */
static enum got get_ranged(struct mistakes *m, json_object *obj, const char *path,
			   const char *name, bool required, uint64_t min, uint64_t max,
			   struct num *out)
{
	enum got g = get_num(m, obj, path, name, required, out);

	if (g == GOT_OK && !num_in(m, path, name, *out, min, max))
		return GOT_BAD;
	return g;
}

static enum got get_bool(struct mistakes *m, json_object *obj, const char *path, const char *name,
			 bool *out)
{
	json_object *v;
	char what[80];

	if (!json_object_object_get_ex(obj, name, &v))
		return GOT_NONE;
	if (!json_object_is_type(v, json_type_boolean)) {
		mistake(m, "%s: expected true or false, got %s", MP(path, name),
			what_is(v, what, sizeof(what)));
		return GOT_BAD;
	}
	*out = json_object_get_boolean(v);
	return GOT_OK;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Hex bytes ("0a0b0c", whitespace allowed between bytes), at most max of them. */
static enum got get_hex(struct mistakes *m, json_object *obj, const char *path, const char *name,
			size_t max, uint8_t **data, size_t *len)
{
	json_object *v;
	char what[80];

	*data = NULL;
	*len = 0;
	if (!json_object_object_get_ex(obj, name, &v))
		return GOT_NONE;
	if (!json_object_is_type(v, json_type_string)) {
		mistake(m, "%s: expected a string of hex bytes, got %s", MP(path, name),
			what_is(v, what, sizeof(what)));
		return GOT_BAD;
	}
	const char *s = json_object_get_string(v);
	size_t slen = (size_t)json_object_get_string_len(v), n = 0;
	uint8_t *out = malloc(slen / 2 + 1);
	if (!out) {
		mistake(m, "%s: out of memory", MP(path, name));
		return GOT_BAD;
	}
	for (size_t i = 0; i < slen;) {
		if (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++;
			continue;
		}
		int hi = hexval(s[i]), lo = i + 1 < slen ? hexval(s[i + 1]) : -1;
		if (hi < 0 || lo < 0) {
			size_t bad = hi < 0 ? i : i + 1;
			if (bad < slen)
				mistake(m, "%s: character %zu ('%c') is not a hex digit", MP(path, name),
					bad, s[bad] >= 0x20 && s[bad] < 0x7f ? s[bad] : '?');
			else
				mistake(m, "%s: odd number of hex digits (the last byte is cut)",
					MP(path, name));
			free(out);
			return GOT_BAD;
		}
		out[n++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	if (n > max) {
		mistake(m, "%s: %zu bytes, at most %zu fit", MP(path, name), n, max);
		free(out);
		return GOT_BAD;
	}
	*data = out;
	*len = n;
	return GOT_OK;
}

/* Every member of obj must be in allowed (NULL-terminated) or extra (NULL-terminated). */
static void only_members(struct mistakes *m, json_object *obj, const char *path,
			 const char *what, const char *const *allowed, const char *const *extra)
{
	json_object_object_foreach(obj, key, val) {
		bool ok = false;
		char list[256] = "", buf[48];
		size_t ll = 0;

		(void)val;
		for (unsigned pass = 0; pass < 2; pass++) {
			const char *const *a = pass ? extra : allowed;
			for (unsigned i = 0; a && a[i]; i++) {
				ok = ok || !strcmp(key, a[i]);
				int w = snprintf(list + ll, sizeof(list) - ll, "%s%s", ll ? ", " : "", a[i]);
				if (w > 0 && (size_t)w < sizeof(list) - ll)
					ll += (size_t)w;
			}
		}
		if (!ok)
			mistake(m, "%s%s%s: unknown member of %s (expected %s)", path, *path ? "." : "",
				shown(key, buf, sizeof(buf)), what, list);
	}
}

/* ---- parsing: the header and BARs --------------------------------------- */

static const char *const root_members[] = {
	"vendor", "device", "subsystem_vendor", "subsystem", "class", "revision", "interrupt_pin",
	"bars", "capabilities", "extended_capabilities", NULL,
};

static void parse_header(struct mistakes *m, json_object *root, struct devmig_profile *p)
{
	struct num n;

	if (get_ranged(m, root, "", "vendor", true, 0, 0xffff, &n) == GOT_OK) {
		if (n.v == 0xffff)
			mistake(m, "vendor: 0xffff is refused (it reads as \"no device\")");
		p->vendor = (uint16_t)n.v;
	}
	if (get_ranged(m, root, "", "device", true, 0, 0xffff, &n) == GOT_OK)
		p->device = (uint16_t)n.v;
	if (get_ranged(m, root, "", "subsystem_vendor", false, 0, 0xffff, &n) == GOT_OK)
		p->subsys_vendor = (uint16_t)n.v;
	if (get_ranged(m, root, "", "subsystem", false, 0, 0xffff, &n) == GOT_OK)
		p->subsys = (uint16_t)n.v;
	if (get_ranged(m, root, "", "class", true, 0, 0xffffff, &n) == GOT_OK)
		p->class_code = (uint32_t)n.v;
	if (get_ranged(m, root, "", "revision", false, 0, 0xff, &n) == GOT_OK)
		p->revision = (uint8_t)n.v;
	if (get_ranged(m, root, "", "interrupt_pin", false, 0, 4, &n) == GOT_OK)
		p->pin = (uint8_t)n.v;
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* The array member name of root (absent: NULL), bounded to max entries. */
static json_object *get_array(struct mistakes *m, json_object *root, const char *name,
			      size_t max)
{
	json_object *a;
	char what[80];

	if (!json_object_object_get_ex(root, name, &a))
		return NULL;
	if (!json_object_is_type(a, json_type_array)) {
		mistake(m, "%s: expected an array, got %s", name, what_is(a, what, sizeof(what)));
		return NULL;
	}
	if (json_object_array_length(a) > max) {
		mistake(m, "%s: %zu entries, at most %zu", name, json_object_array_length(a), max);
		return NULL;
	}
	return a;
}

/* Who holds each BAR slot, for the messages. */
struct slots {
	int owner[DEVMIG_PCI_NUM_BARS]; /* entry in bars[] or -1 */
	bool upper[DEVMIG_PCI_NUM_BARS]; /* held as the upper half of owner's BAR */
};

static void parse_bars(struct mistakes *m, json_object *root, struct devmig_profile *p,
		       struct slots *sl)
{
	static const char *const members[] = { "index", "size", "type", "prefetchable", NULL };
	json_object *a = get_array(m, root, "bars", DEVMIG_PCI_NUM_BARS);

	for (unsigned i = 0; i < DEVMIG_PCI_NUM_BARS; i++)
		sl->owner[i] = -1;
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *b = json_object_array_get_idx(a, i), *tv;
		char path[32], what[80], buf[48];
		struct num idx, size;
		unsigned flags = 0;
		bool ok = true, pf = false, is64 = false, io = false;
		const char *type = NULL;

		snprintf(path, sizeof(path), "bars[%zu]", i);
		if (!json_object_is_type(b, json_type_object)) {
			mistake(m, "%s: expected an object, got %s", path, what_is(b, what, sizeof(what)));
			continue;
		}
		only_members(m, b, path, "a BAR", members, NULL);
		bool idx_ok = get_ranged(m, b, path, "index", true, 0, DEVMIG_PCI_NUM_BARS - 1,
					 &idx) == GOT_OK;
		if (!json_object_object_get_ex(b, "type", &tv)) {
			mistake(m, "%s.type: missing (mem32, mem64 or io)", path);
			ok = false;
		} else if (!json_object_is_type(tv, json_type_string)) {
			mistake(m, "%s.type: expected \"mem32\", \"mem64\" or \"io\", got %s", path,
				what_is(tv, what, sizeof(what)));
			ok = false;
		} else {
			type = json_object_get_string(tv);
			if (!strcmp(type, "mem64")) {
				is64 = true;
				flags = PCI_BASE_ADDRESS_MEM_TYPE_64;
			} else if (!strcmp(type, "io")) {
				io = true;
				flags = PCI_BASE_ADDRESS_SPACE_IO;
			} else if (strcmp(type, "mem32")) {
				mistake(m, "%s.type: \"%s\" is not one of mem32, mem64, io", path,
					shown(type, buf, sizeof(buf)));
				ok = false;
				type = NULL;
			}
		}
		switch (get_bool(m, b, path, "prefetchable", &pf)) {
		case GOT_BAD: ok = false; break;
		case GOT_OK:
			if (pf && io) {
				mistake(m, "%s.prefetchable: an io BAR cannot be prefetchable", path);
				ok = false;
			}
			if (pf)
				flags |= PCI_BASE_ADDRESS_MEM_PREFETCH;
			break;
		case GOT_NONE: break;
		}
		if (get_num(m, b, path, "size", true, &size) != GOT_OK) {
			ok = false;
		} else if (!is_pow2(size.v)) {
			mistake(m, "%s.size: %s is not a power of two", path, NUMSTR(size));
			ok = false;
		} else if (type) {
			uint64_t lo = io ? 4 : 16, hi = io ? 256 : is64 ? 1ull << 63 : 1ull << 31;
			if (size.v < lo || size.v > hi) {
				mistake(m, "%s.size: %s is outside the sizes of %s %s BAR (%s)", path,
					NUMSTR(size), io ? "an" : "a", type,
					io ? "4-256 bytes" : is64 ? "16 bytes-2^63" : "16 bytes-2 GiB");
				ok = false;
			}
		}
		if (!idx_ok)
			continue; /* no slot to claim */
		unsigned s = (unsigned)idx.v;
		if (is64 && s == DEVMIG_PCI_NUM_BARS - 1) {
			mistake(m, "%s (BAR 5, mem64): a 64-bit BAR takes two slots and 5 is the last",
				path);
			ok = false;
		}
		if (sl->owner[s] >= 0) {
			if (sl->upper[s])
				mistake(m, "%s (BAR %u): slot %u is taken by the upper half of the 64-bit BAR %u (bars[%d])",
					path, s, s, s - 1, sl->owner[s]);
			else
				mistake(m, "%s (BAR %u): BAR %u is already declared by bars[%d]", path, s,
					s, sl->owner[s]);
			continue;
		}
		sl->owner[s] = (int)i;
		if (is64 && s + 1 < DEVMIG_PCI_NUM_BARS) {
			if (sl->owner[s + 1] >= 0) {
				mistake(m, "%s (BAR %u, mem64): its upper half needs slot %u, which bars[%d] declares",
					path, s, s + 1, sl->owner[s + 1]);
				ok = false;
			} else {
				sl->owner[s + 1] = (int)i;
				sl->upper[s + 1] = true;
			}
		}
		if (ok)
			p->bar[s] = (struct pbar){ .used = true, .size = size.v, .flags = flags };
	}
}

/* ---- parsing: capabilities ---------------------------------------------- */

static const char *cap_desc(const struct pcap *c, char *buf, size_t len)
{
	if (c->kind == K_RAW)
		snprintf(buf, len, "cap 0x%02x", c->id);
	else if (c->kind == K_RAW_EXT)
		snprintf(buf, len, "ext cap 0x%04x", c->id);
	else
		snprintf(buf, len, "%s", kind_name[c->kind]);
	return buf;
}

#define CAPDESC(c) cap_desc((c), (char[24]){ 0 }, 24)

static void parse_msi(struct mistakes *m, json_object *o, const char *path, struct pcap *c)
{
	struct num n;

	if (get_num(m, o, path, "vectors", true, &n) == GOT_OK) {
		if (n.v > 32 || !is_pow2(n.v))
			mistake(m, "%s.vectors: %s is not one of 1, 2, 4, 8, 16, 32", path, NUMSTR(n));
		else
			c->vectors = (unsigned)n.v;
	}
	get_bool(m, o, path, "64bit", &c->is64);
	get_bool(m, o, path, "maskable", &c->maskable);
	c->size = c->maskable ? (c->is64 ? PCI_MSI_PENDING_64 : PCI_MSI_PENDING_32) + 4
			      : (c->is64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32);
}

/* One MSI-X structure (table or PBA) inside its BAR. */
static bool msix_where(struct mistakes *m, const char *path, const char *barname,
		       const char *offname, struct num bar, struct num off, bool bar_ok,
		       bool off_ok, const struct devmig_profile *p, const struct slots *sl)
{
	bool ok = true;

	if (off_ok && (off.v & 7)) {
		mistake(m, "%s: %s is not 8-byte aligned", MP(path, offname), NUMSTR(off));
		ok = false;
	}
	if (!bar_ok)
		return false;
	unsigned b = (unsigned)bar.v;
	if (sl->upper[b]) {
		mistake(m, "%s: slot %u is the upper half of the 64-bit BAR %u", MP(path, barname), b,
			b - 1);
		return false;
	}
	if (!p->bar[b].used) {
		if (sl->owner[b] < 0)
			mistake(m, "%s: BAR %u is not declared in bars", MP(path, barname), b);
		return false; /* a bad declaration was reported there */
	}
	if (p->bar[b].flags & PCI_BASE_ADDRESS_SPACE_IO) {
		mistake(m, "%s: BAR %u is an io BAR; MSI-X needs a memory BAR", MP(path, barname), b);
		return false;
	}
	return ok && off_ok;
}

static void parse_msix(struct mistakes *m, json_object *o, const char *path, struct pcap *c,
		       const struct devmig_profile *p, const struct slots *sl)
{
	struct num n, tb, to, pb, po;
	bool n_ok = get_ranged(m, o, path, "vectors", true, 1, MSIX_MAX, &n) == GOT_OK;
	bool tb_ok = get_ranged(m, o, path, "table_bar", true, 0, 5, &tb) == GOT_OK;
	bool to_ok = get_ranged(m, o, path, "table_offset", true, 0, 0xffffffff, &to) == GOT_OK;
	bool pb_ok = get_ranged(m, o, path, "pba_bar", true, 0, 5, &pb) == GOT_OK;
	bool po_ok = get_ranged(m, o, path, "pba_offset", true, 0, 0xffffffff, &po) == GOT_OK;

	c->size = PCI_CAP_MSIX_SIZEOF;
	bool t_ok = msix_where(m, path, "table_bar", "table_offset", tb, to, tb_ok, to_ok, p, sl);
	bool p_ok = msix_where(m, path, "pba_bar", "pba_offset", pb, po, pb_ok, po_ok, p, sl);
	if (!n_ok)
		return;
	c->vectors = (unsigned)n.v;
	uint64_t tlen = n.v * PCI_MSIX_ENTRY_SIZE, plen = (n.v + 63) / 64 * 8;
	if (t_ok && to.v + tlen > p->bar[tb.v].size) {
		mistake(m, "%s (msix): the table (%" PRIu64 " vectors, %" PRIu64 " bytes at 0x%" PRIx64
			   ") does not fit in BAR %u (%" PRIu64 " bytes)",
			path, n.v, tlen, to.v, (unsigned)tb.v, p->bar[tb.v].size);
		t_ok = false;
	}
	if (p_ok && po.v + plen > p->bar[pb.v].size) {
		mistake(m, "%s (msix): the PBA (%" PRIu64 " bytes at 0x%" PRIx64
			   ") does not fit in BAR %u (%" PRIu64 " bytes)",
			path, plen, po.v, (unsigned)pb.v, p->bar[pb.v].size);
		p_ok = false;
	}
	if (t_ok && p_ok && tb.v == pb.v && to.v < po.v + plen && po.v < to.v + tlen)
		mistake(m, "%s (msix): the table (0x%" PRIx64 "-0x%" PRIx64 ") and the PBA (0x%" PRIx64
			   "-0x%" PRIx64 ") overlap in BAR %u",
			path, to.v, to.v + tlen - 1, po.v, po.v + plen - 1, (unsigned)tb.v);
	c->table_bar = (unsigned)tb.v;
	c->table_off = (uint32_t)to.v;
	c->pba_bar = (unsigned)pb.v;
	c->pba_off = (uint32_t)po.v;
}

static void parse_pcie(struct mistakes *m, json_object *o, const char *path, struct pcap *c)
{
	struct num n;

	c->size = PCIE_CAP_SIZE;
	if (get_num(m, o, path, "link_speed", true, &n) == GOT_OK) {
		if (n.v < PCI_EXP_LNKCAP_SLS_2_5GB || n.v > PCI_EXP_LNKCAP_SLS_64_0GB)
			mistake(m, "%s.link_speed: %s is out of range (1-6: 2.5, 5, 8, 16, 32, 64 GT/s)",
				path, NUMSTR(n));
		c->speed = (unsigned)n.v;
	}
	if (get_num(m, o, path, "link_width", true, &n) == GOT_OK) {
		uint64_t w = n.v;
		if (w != 1 && w != 2 && w != 4 && w != 8 && w != 12 && w != 16 && w != 32)
			mistake(m, "%s.link_width: %s is not one of 1, 2, 4, 8, 12, 16, 32 lanes", path,
				NUMSTR(n));
		c->width = (unsigned)w;
	}
}

static void parse_pasid(struct mistakes *m, json_object *o, const char *path, struct pcap *c)
{
	struct num n;

	c->size = PCI_EXT_CAP_PASID_SIZEOF;
	if (get_ranged(m, o, path, "max_width", true, 1, 20, &n) == GOT_OK)
		c->max_width = (unsigned)n.v;
	get_bool(m, o, path, "exec", &c->exec);
	get_bool(m, o, path, "priv", &c->priv);
}

/* Numeric ids the named kinds own: a raw one would escape the core's emulation. */
static const char *named_id(uint64_t id, bool ext)
{
	if (ext)
		return id == PCI_EXT_CAP_ID_PASID ? "pasid" : id == PCI_EXT_CAP_ID_DSN ? "dsn" : NULL;
	switch (id) {
	case PCI_CAP_ID_PM: return "pm";
	case PCI_CAP_ID_MSI: return "msi";
	case PCI_CAP_ID_VNDR: return "vendor";
	case PCI_CAP_ID_EXP: return "pcie";
	case PCI_CAP_ID_MSIX: return "msix";
	}
	return NULL;
}

/* The id member: which kind (false with a mistake when none). */
static bool parse_kind(struct mistakes *m, json_object *o, const char *path, bool ext,
		       struct pcap *c)
{
	static const enum kind std_kinds[] = { K_PM, K_MSI, K_MSIX, K_PCIE, K_VENDOR };
	static const enum kind ext_kinds[] = { K_PASID, K_DSN };
	json_object *v;
	char buf[48];

	if (!json_object_object_get_ex(o, "id", &v)) {
		mistake(m, "%s.id: missing", path);
		return false;
	}
	if (json_object_is_type(v, json_type_string) && strncmp(json_object_get_string(v), "0x", 2) &&
	    strncmp(json_object_get_string(v), "0X", 2)) {
		const char *s = json_object_get_string(v);
		for (size_t i = 0; i < (ext ? 2 : 5); i++) {
			enum kind k = ext ? ext_kinds[i] : std_kinds[i];
			if (!strcmp(s, kind_name[k])) {
				c->kind = k;
				return true;
			}
		}
		for (size_t i = 0; i < (ext ? 5 : 2); i++) {
			enum kind k = ext ? std_kinds[i] : ext_kinds[i];
			if (!strcmp(s, kind_name[k])) {
				mistake(m, "%s.id: \"%s\" is %s capability: list it in %s", path, s,
					ext ? "a standard" : "an extended",
					ext ? "capabilities" : "extended_capabilities");
				return false;
			}
		}
		mistake(m, "%s.id: unknown capability \"%s\" (known: %s, or a number for a raw one)",
			path, shown(s, buf, sizeof(buf)),
			ext ? "pasid, dsn" : "pm, msi, msix, pcie, vendor");
		return false;
	}
	struct num n;
	if (get_num(m, o, path, "id", true, &n) != GOT_OK)
		return false;
	if (!num_in(m, path, "id", n, 1, ext ? 0xffff : 0xff))
		return false;
	const char *named = named_id(n.v, ext);
	if (named) {
		mistake(m, "%s.id: %s is the %s capability: write \"id\": \"%s\"", path, NUMSTR(n),
			named, named);
		return false;
	}
	c->kind = ext ? K_RAW_EXT : K_RAW;
	c->id = (uint16_t)n.v;
	return true;
}

static void parse_cap(struct mistakes *m, json_object *o, const char *path, bool ext,
		      struct pcap *c, const struct devmig_profile *p, const struct slots *sl)
{
	static const char *const common[] = { "id", "offset", NULL };
	unsigned lo = ext ? EXT_START : STD_START, hi = ext ? EXT_END : STD_END;
	char what[80];
	struct num off, n;

	c->ext = ext;
	if (!json_object_is_type(o, json_type_object)) {
		mistake(m, "%s: expected an object, got %s", path, what_is(o, what, sizeof(what)));
		return;
	}
	if (!parse_kind(m, o, path, ext, c))
		return; /* its other members cannot be checked */
	c->known = true;
	snprintf(what, sizeof(what), "a%s %s capability", c->kind == K_MSI || c->kind == K_MSIX ? "n" : "",
		 kind_name[c->kind]);
	only_members(m, o, path, what, common, kind_members[c->kind]);

	bool off_ok = get_num(m, o, path, "offset", true, &off) == GOT_OK;
	if (off_ok && (off.v < lo || off.v >= hi)) {
		if (!ext && off.v >= STD_END)
			mistake(m, "%s.offset: %s is past the standard capability area 0x40-0xff (extended capabilities go in extended_capabilities)",
				path, NUMSTR(off));
		else if (!ext)
			mistake(m, "%s.offset: %s is outside the standard capability area 0x40-0xff (below 0x40 is the header)",
				path, NUMSTR(off));
		else
			mistake(m, "%s.offset: %s is outside the extended capability area 0x100-0xfff",
				path, NUMSTR(off));
		off_ok = false;
	} else if (off_ok && (off.v & 3)) {
		mistake(m, "%s.offset: %s is not 4-byte aligned", path, NUMSTR(off));
		off_ok = false;
	}

	switch (c->kind) {
	case K_PM: c->size = PCI_PM_SIZEOF; break;
	case K_MSI: parse_msi(m, o, path, c); break;
	case K_MSIX: parse_msix(m, o, path, c, p, sl); break;
	case K_PCIE: parse_pcie(m, o, path, c); break;
	case K_VENDOR:
		get_hex(m, o, path, "data", 0xff - 3, &c->data, &c->len);
		c->size = 3 + (unsigned)c->len;
		break;
	case K_RAW:
		/* Built as a vendor capability of the same size: at least its 3 bytes. */
		get_hex(m, o, path, "data", 0xff - 2, &c->data, &c->len);
		c->size = 2 + (unsigned)(c->len ? c->len : 1);
		break;
	case K_PASID: parse_pasid(m, o, path, c); break;
	case K_DSN:
		c->size = PCI_EXT_CAP_DSN_SIZEOF;
		if (get_num(m, o, path, "serial", true, &n) == GOT_OK)
			c->serial = n.v;
		break;
	case K_RAW_EXT:
		if (get_ranged(m, o, path, "version", true, 0, 15, &n) == GOT_OK)
			c->version = (uint8_t)n.v;
		get_hex(m, o, path, "data", EXT_END - EXT_START - 4, &c->data, &c->len);
		c->size = 4 + (unsigned)c->len;
		break;
	}
	c->size = (c->size + 3) & ~3u;
	if (!off_ok)
		return;
	c->off = (unsigned)off.v;
	if (c->size > hi - c->off) {
		mistake(m, "%s (%s at 0x%x): its %u bytes do not fit below 0x%x (it would end at 0x%x)",
			path, CAPDESC(c), c->off, c->size, hi, c->off + c->size - 1);
		return;
	}
	c->placed = true;
}

static bool unique_kind(enum kind k)
{
	return k != K_VENDOR && k != K_RAW && k != K_RAW_EXT;
}

static void cap_path(char *buf, size_t len, const struct devmig_profile *p, unsigned i)
{
	if (i < p->nstd)
		snprintf(buf, len, "capabilities[%u]", i);
	else
		snprintf(buf, len, "extended_capabilities[%u]", i - p->nstd);
}

/* Across capabilities: overlaps, duplicates, the null extended header, the count. */
static void check_caps(struct mistakes *m, const struct devmig_profile *p)
{
	char pi[40], pj[40];
	const struct pcap *first_ext = p->ncap > p->nstd ? &p->cap[p->nstd] : NULL;
	bool null_head = first_ext && first_ext->placed && first_ext->off != EXT_START;

	for (unsigned i = 0; i < p->ncap; i++) {
		const struct pcap *c = &p->cap[i];

		cap_path(pi, sizeof(pi), p, i);
		for (unsigned j = 0; j < i; j++) {
			const struct pcap *d = &p->cap[j];
			if (d->ext != c->ext)
				continue;
			cap_path(pj, sizeof(pj), p, j);
			if (c->known && d->known && unique_kind(c->kind) && c->kind == d->kind) {
				mistake(m, "%s (%s): a second %s capability (%s is one); only one is allowed",
					pi, kind_name[c->kind], kind_name[c->kind], pj);
			}
			if (c->placed && d->placed && c->off < d->off + d->size &&
			    d->off < c->off + c->size)
				mistake(m, "%s (%s at 0x%x-0x%x): overlaps %s (%s at 0x%x-0x%x)", pi,
					CAPDESC(c), c->off, c->off + c->size - 1, pj, CAPDESC(d), d->off,
					d->off + d->size - 1);
		}
		if (null_head && c != first_ext && c->ext && c->placed && c->off < EXT_START + 4)
			mistake(m, "%s (%s at 0x%x-0x%x): overlaps the null header at 0x100-0x103 that starts the extended chain (extended_capabilities[0] is not at 0x100)",
				pi, CAPDESC(c), c->off, c->off + c->size - 1);
	}
	if (p->ncap + null_head > MAX_CAPS)
		mistake(m, "capabilities, extended_capabilities: %u capabilities in all%s, at most %u",
			p->ncap + null_head, null_head ? " with the null extended header" : "",
			MAX_CAPS);
}

static void parse_cap_list(struct mistakes *m, json_object *root, bool ext,
			   struct devmig_profile *p, const struct slots *sl)
{
	const char *name = ext ? "extended_capabilities" : "capabilities";
	json_object *a = get_array(m, root, name, MAX_CAPS);

	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		char path[48];
		struct pcap *c = &p->cap[p->ncap++];

		snprintf(path, sizeof(path), "%s[%zu]", name, i);
		parse_cap(m, json_object_array_get_idx(a, i), path, ext, c, p, sl);
	}
}

/* ---- parse -------------------------------------------------------------- */

void devmig_profile_free(struct devmig_profile *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->ncap; i++)
		free(p->cap[i].data);
	free(p->cap);
	free(p);
}

static json_object *parse_json(struct mistakes *m, const char *json, size_t len)
{
	if (len > PROFILE_MAX_LEN) {
		mistake(m, "profile: %zu bytes, at most %u", len, PROFILE_MAX_LEN);
		return NULL;
	}
	struct json_tokener *tok = json_tokener_new_ex(PROFILE_MAX_DEPTH);
	if (!tok) {
		mistake(m, "profile: out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *root = json_tokener_parse_ex(tok, json ? json : "", (int)len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (e == json_tokener_success && end < len) {
		mistake(m, "profile: byte %zu: a NUL byte inside the JSON text", end);
		json_object_put(root);
		return NULL;
	}
	if (e != json_tokener_success) {
		unsigned line = 1, col = 1;
		for (size_t i = 0; i < end && i < len; i++, col++)
			if (json[i] == '\n')
				line++, col = 0;
		if (e == json_tokener_continue)
			mistake(m, "profile: the JSON text ends early (line %u)", line);
		else
			mistake(m, "profile: JSON syntax error at line %u, column %u: %s", line, col,
				json_tokener_error_desc(e));
		json_object_put(root);
		return NULL;
	}
	return root;
}

struct devmig_profile *devmig_profile_parse(const char *json, size_t len, char *err,
					    size_t errlen)
{
	struct mistakes m = { 0 };
	struct devmig_profile *p = NULL;
	struct slots sl = { 0 };
	char what[80];

	if (err && errlen)
		err[0] = '\0';
	json_object *root = parse_json(&m, json, len);
	if (!root)
		goto out;
	if (!json_object_is_type(root, json_type_object)) {
		mistake(&m, "profile: expected a JSON object, got %s", what_is(root, what, sizeof(what)));
		goto out;
	}
	p = calloc(1, sizeof(*p));
	if (p)
		p->cap = calloc(2 * MAX_CAPS, sizeof(*p->cap));
	if (!p || !p->cap) {
		mistake(&m, "profile: out of memory");
		goto out;
	}
	only_members(&m, root, "", "the profile", root_members, NULL);
	parse_header(&m, root, p);
	parse_bars(&m, root, p, &sl);
	parse_cap_list(&m, root, false, p, &sl);
	p->nstd = p->ncap;
	parse_cap_list(&m, root, true, p, &sl);
	check_caps(&m, p);
out:
	json_object_put(root);
	if (mistakes_out(&m, err, errlen)) {
		devmig_profile_free(p);
		return NULL;
	}
	return p;
}

struct devmig_profile *devmig_profile_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0;

	if (!f) {
		snprintf(err, errlen, "cannot open: %s", strerror(errno));
		return NULL;
	}
	buf = malloc(PROFILE_MAX_LEN + 1);
	if (!buf) {
		fclose(f);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	len = fread(buf, 1, PROFILE_MAX_LEN + 1, f);
	int bad = ferror(f) ? (errno ? errno : EIO) : 0;
	fclose(f);
	if (bad) {
		snprintf(err, errlen, "cannot read: %s", strerror(bad));
		free(buf);
		return NULL;
	}
	if (len > PROFILE_MAX_LEN) {
		snprintf(err, errlen, "larger than %u bytes", PROFILE_MAX_LEN);
		free(buf);
		return NULL;
	}
	struct devmig_profile *p = devmig_profile_parse(buf, len, err, errlen);
	free(buf);
	return p;
}

/* ---- build -------------------------------------------------------------- */

static int build_cap(const struct pcap *c, struct devmig_pci_config *cfg)
{
	static const uint8_t zero;
	int rc;

	switch (c->kind) {
	case K_PM: return devmig_pci_add_pm(cfg, c->off);
	case K_MSI:
		return devmig_pci_add_msi(cfg, c->off, c->vectors,
					  (c->is64 ? PCI_MSI_FLAGS_64BIT : 0) |
						  (c->maskable ? PCI_MSI_FLAGS_MASKBIT : 0));
	case K_MSIX:
		return devmig_pci_add_msix(cfg, c->off, c->vectors, c->table_bar, c->table_off,
					   c->pba_bar, c->pba_off);
	case K_PCIE: return devmig_pci_add_pcie(cfg, c->off, c->speed, c->width);
	case K_VENDOR: return devmig_pci_add_vendor_cap(cfg, c->off, c->data, c->len);
	case K_RAW: {
		/* A vendor capability of the same size, then our ID and bytes over it. */
		uint8_t id = (uint8_t)c->id;
		rc = devmig_pci_add_vendor_cap(cfg, c->off, c->len > 1 ? c->data + 1 : NULL,
					       c->len ? c->len - 1 : 0);
		if (rc >= 0)
			rc = devmig_pci_set_bytes(cfg, c->off, &id, 1);
		if (rc >= 0)
			rc = devmig_pci_set_bytes(cfg, c->off + 2, c->len ? c->data : &zero,
						  c->len ? c->len : 1);
		return rc;
	}
	case K_PASID:
		return devmig_pci_add_pasid(cfg, c->off, c->max_width,
					    (c->exec ? PCI_PASID_CAP_EXEC : 0) |
						    (c->priv ? PCI_PASID_CAP_PRIV : 0));
	case K_DSN: return devmig_pci_add_dsn(cfg, c->off, c->serial);
	case K_RAW_EXT:
		return devmig_pci_add_ext_cap(cfg, c->off, c->id, c->version, c->data, c->len);
	}
	return -EINVAL;
}

int devmig_profile_build(const struct devmig_profile *p, struct devmig_pci_config *cfg,
			 char *err, size_t errlen)
{
	const char *what = "vendor, device";
	int rc = devmig_pci_set_ids(cfg, p->vendor, p->device);

	if (!rc) {
		what = "subsystem_vendor, subsystem";
		rc = devmig_pci_set_subsystem(cfg, p->subsys_vendor, p->subsys);
	}
	if (!rc) {
		what = "class, revision";
		rc = devmig_pci_set_class(cfg, p->class_code, p->revision);
	}
	if (!rc) {
		what = "interrupt_pin";
		rc = devmig_pci_set_intx_pin(cfg, p->pin);
	}
	if (rc) {
		snprintf(err, errlen, "%s: the builder refused them: %s", what, strerror(-rc));
		return rc;
	}
	for (unsigned b = 0; b < DEVMIG_PCI_NUM_BARS; b++) {
		if (!p->bar[b].used)
			continue;
		rc = devmig_pci_set_bar(cfg, b, p->bar[b].size, p->bar[b].flags);
		if (rc) {
			snprintf(err, errlen, "BAR %u: the builder refused it: %s", b, strerror(-rc));
			return rc;
		}
	}
	for (unsigned i = 0; i < p->ncap; i++) {
		const struct pcap *c = &p->cap[i];
		rc = build_cap(c, cfg);
		if (rc < 0) {
			char path[40];
			cap_path(path, sizeof(path), p, i);
			snprintf(err, errlen, "%s (%s at 0x%x): the builder refused it: %s", path,
				 CAPDESC(c), c->off, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* ---- dump --------------------------------------------------------------- */

/* Little-endian read; bytes past the config space read as zero. */
static uint64_t rd(const uint8_t *cfg, unsigned off, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		if (off + i < CFG_SIZE)
			v |= (uint64_t)cfg[off + i] << (8 * i);
	return v;
}

static json_object *hexstr(unsigned digits, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "0x%0*" PRIx64, (int)digits, v);
	return json_object_new_string(buf);
}

static json_object *hexbytes(const uint8_t *d, size_t n)
{
	char *s = malloc(2 * n + 1);
	json_object *o;

	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++)
		snprintf(s + 2 * i, 3, "%02x", d[i]);
	s[2 * n] = '\0';
	o = json_object_new_string(s);
	free(s);
	return o;
}

/* Bytes [from, to) without their trailing zeros (a fresh config is zero). */
static size_t trimmed(const uint8_t *cfg, unsigned from, unsigned to)
{
	while (to > from && !cfg[to - 1])
		to--;
	return to > from ? to - from : 0;
}

/* The lowest capability offset above off in list (n of them), else end. */
static unsigned next_above(const unsigned *list, unsigned n, unsigned off, unsigned end)
{
	unsigned best = end;

	for (unsigned i = 0; i < n; i++)
		if (list[i] > off && list[i] < best)
			best = list[i];
	return best;
}

static void add(json_object *o, const char *k, json_object *v)
{
	json_object_object_add(o, k, v);
}

static json_object *dump_bars(const uint8_t *cfg, const uint64_t *bar_sizes, char *err,
			      size_t errlen)
{
	json_object *a = json_object_new_array();

	for (unsigned b = 0; b < DEVMIG_PCI_NUM_BARS; b++) {
		uint32_t reg = (uint32_t)rd(cfg, PCI_BASE_ADDRESS_0 + 4 * b, 4);
		uint64_t size = bar_sizes ? bar_sizes[b] : 0;
		const char *type;

		if (!size)
			continue;
		if (reg & PCI_BASE_ADDRESS_SPACE_IO) {
			type = "io";
		} else {
			unsigned t = reg & PCI_BASE_ADDRESS_MEM_TYPE_MASK;
			if (t == PCI_BASE_ADDRESS_MEM_TYPE_64)
				type = "mem64";
			else if (t == PCI_BASE_ADDRESS_MEM_TYPE_32)
				type = "mem32";
			else {
				snprintf(err, errlen, "BAR %u: memory type bits 0x%x are not supported",
					 b, t);
				json_object_put(a);
				return NULL;
			}
		}
		json_object *o = json_object_new_object();
		add(o, "index", json_object_new_int((int)b));
		add(o, "size", json_object_new_uint64(size));
		add(o, "type", json_object_new_string(type));
		if (!(reg & PCI_BASE_ADDRESS_SPACE_IO))
			add(o, "prefetchable",
			    json_object_new_boolean(!!(reg & PCI_BASE_ADDRESS_MEM_PREFETCH)));
		json_object_array_add(a, o);
		if (!strcmp(type, "mem64"))
			b++; /* the upper half */
	}
	return a;
}

static json_object *dump_std_cap(const uint8_t *cfg, unsigned off, const unsigned *all,
				 unsigned n)
{
	json_object *o = json_object_new_object();
	uint8_t id = cfg[off];
	uint32_t v;

	switch (id) {
	case PCI_CAP_ID_PM:
		add(o, "id", json_object_new_string("pm"));
		add(o, "offset", hexstr(2, off));
		break;
	case PCI_CAP_ID_MSI:
		v = (uint32_t)rd(cfg, off + PCI_MSI_FLAGS, 2);
		add(o, "id", json_object_new_string("msi"));
		add(o, "offset", hexstr(2, off));
		add(o, "vectors", json_object_new_int(1 << ((v & PCI_MSI_FLAGS_QMASK) >> 1)));
		add(o, "64bit", json_object_new_boolean(!!(v & PCI_MSI_FLAGS_64BIT)));
		add(o, "maskable", json_object_new_boolean(!!(v & PCI_MSI_FLAGS_MASKBIT)));
		break;
	case PCI_CAP_ID_MSIX: {
		uint32_t t = (uint32_t)rd(cfg, off + PCI_MSIX_TABLE, 4);
		uint32_t p = (uint32_t)rd(cfg, off + PCI_MSIX_PBA, 4);
		v = (uint32_t)rd(cfg, off + PCI_MSIX_FLAGS, 2);
		add(o, "id", json_object_new_string("msix"));
		add(o, "offset", hexstr(2, off));
		add(o, "vectors", json_object_new_int((int)(v & PCI_MSIX_FLAGS_QSIZE) + 1));
		add(o, "table_bar", json_object_new_int((int)(t & PCI_MSIX_TABLE_BIR)));
		add(o, "table_offset", json_object_new_int64(t & PCI_MSIX_TABLE_OFFSET));
		add(o, "pba_bar", json_object_new_int((int)(p & PCI_MSIX_PBA_BIR)));
		add(o, "pba_offset", json_object_new_int64(p & PCI_MSIX_PBA_OFFSET));
		break;
	}
	case PCI_CAP_ID_EXP:
		v = (uint32_t)rd(cfg, off + PCI_EXP_LNKCAP, 4);
		add(o, "id", json_object_new_string("pcie"));
		add(o, "offset", hexstr(2, off));
		add(o, "link_speed", json_object_new_int((int)(v & PCI_EXP_LNKCAP_SLS)));
		add(o, "link_width", json_object_new_int((int)((v & PCI_EXP_LNKCAP_MLW) >> 4)));
		break;
	case PCI_CAP_ID_VNDR: {
		unsigned l = cfg[off + PCI_CAP_FLAGS], end = off + l;
		if (end > STD_END)
			end = STD_END;
		add(o, "id", json_object_new_string("vendor"));
		add(o, "offset", hexstr(2, off));
		if (l > 3)
			add(o, "data", hexbytes(cfg + off + 3, end - off - 3));
		break;
	}
	default: {
		/* Raw: its bytes up to the next capability, trailing zeros left out. */
		unsigned end = next_above(all, n, off, STD_END);
		add(o, "id", json_object_new_int(id));
		add(o, "offset", hexstr(2, off));
		size_t l = end > off + 2 ? trimmed(cfg, off + 2, end) : 0;
		if (l)
			add(o, "data", hexbytes(cfg + off + 2, l));
		break;
	}
	}
	return o;
}

static json_object *dump_ext_cap(const uint8_t *cfg, unsigned off, const unsigned *all,
				 unsigned n)
{
	json_object *o = json_object_new_object();
	uint32_t hdr = (uint32_t)rd(cfg, off, 4);
	unsigned id = PCI_EXT_CAP_ID(hdr);

	if (id == PCI_EXT_CAP_ID_PASID) {
		uint32_t v = (uint32_t)rd(cfg, off + PCI_PASID_CAP, 2);
		add(o, "id", json_object_new_string("pasid"));
		add(o, "offset", hexstr(3, off));
		add(o, "max_width", json_object_new_int((int)((v >> 8) & 0x1f)));
		add(o, "exec", json_object_new_boolean(!!(v & PCI_PASID_CAP_EXEC)));
		add(o, "priv", json_object_new_boolean(!!(v & PCI_PASID_CAP_PRIV)));
	} else if (id == PCI_EXT_CAP_ID_DSN) {
		add(o, "id", json_object_new_string("dsn"));
		add(o, "offset", hexstr(3, off));
		add(o, "serial", hexstr(16, rd(cfg, off + 4, 8)));
	} else {
		unsigned end = next_above(all, n, off, EXT_END);
		add(o, "id", json_object_new_int((int)id));
		add(o, "version", json_object_new_int((int)PCI_EXT_CAP_VER(hdr)));
		add(o, "offset", hexstr(3, off));
		size_t l = end > off + 4 ? trimmed(cfg, off + 4, end) : 0;
		if (l)
			add(o, "data", hexbytes(cfg + off + 4, l));
	}
	return o;
}

/* The standard chain's offsets in chain order; -1 with err when malformed. */
static int walk_std(const uint8_t *cfg, unsigned *list, char *err, size_t errlen)
{
	bool seen[CFG_SIZE / 4] = { false };
	unsigned n = 0, prev = PCI_CAPABILITY_LIST;

	if (!(rd(cfg, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST))
		return 0;
	for (unsigned off = cfg[PCI_CAPABILITY_LIST] & ~3u; off; off = cfg[off + PCI_CAP_LIST_NEXT] & ~3u) {
		if (off < STD_START) {
			snprintf(err, errlen, "config 0x%02x: capability pointer 0x%02x points into the header",
				 prev, off);
			return -1;
		}
		if (seen[off / 4]) {
			snprintf(err, errlen, "config 0x%02x: the capability chain loops back to 0x%02x",
				 prev, off);
			return -1;
		}
		seen[off / 4] = true;
		list[n++] = off;
		prev = off + PCI_CAP_LIST_NEXT;
	}
	return (int)n;
}

/* The extended chain's offsets (null capabilities left out); -1 with err. */
static int walk_ext(const uint8_t *cfg, unsigned *list, char *err, size_t errlen)
{
	bool seen[CFG_SIZE / 4] = { false };
	unsigned n = 0, off = EXT_START;
	uint32_t hdr = (uint32_t)rd(cfg, EXT_START, 4);

	if (hdr == 0 || hdr == 0xffffffff)
		return 0;
	while (off) {
		if (off < EXT_START) {
			snprintf(err, errlen, "extended capability pointer 0x%03x points below 0x100",
				 off);
			return -1;
		}
		if (seen[off / 4]) {
			snprintf(err, errlen, "the extended capability chain loops back to 0x%03x", off);
			return -1;
		}
		seen[off / 4] = true;
		hdr = (uint32_t)rd(cfg, off, 4);
		if (PCI_EXT_CAP_ID(hdr))
			list[n++] = off;
		off = PCI_EXT_CAP_NEXT(hdr);
	}
	return (int)n;
}

char *devmig_profile_dump(const uint8_t cfg[4096], const uint64_t bar_sizes[6], char *err,
			  size_t errlen)
{
	unsigned std[CFG_SIZE / 4], ext[CFG_SIZE / 4];
	int nstd = walk_std(cfg, std, err, errlen);
	int next = nstd < 0 ? -1 : walk_ext(cfg, ext, err, errlen);

	if (nstd < 0 || next < 0)
		return NULL;
	json_object *root = json_object_new_object();
	json_object *bars = dump_bars(cfg, bar_sizes, err, errlen);
	if (!root || !bars) {
		json_object_put(root);
		if (!bars && err && errlen && !err[0])
			snprintf(err, errlen, "out of memory");
		return NULL;
	}
	add(root, "vendor", hexstr(4, rd(cfg, PCI_VENDOR_ID, 2)));
	add(root, "device", hexstr(4, rd(cfg, PCI_DEVICE_ID, 2)));
	add(root, "subsystem_vendor", hexstr(4, rd(cfg, PCI_SUBSYSTEM_VENDOR_ID, 2)));
	add(root, "subsystem", hexstr(4, rd(cfg, PCI_SUBSYSTEM_ID, 2)));
	add(root, "class", hexstr(6, rd(cfg, PCI_CLASS_PROG, 3)));
	add(root, "revision", json_object_new_int(cfg[PCI_REVISION_ID]));
	add(root, "interrupt_pin", json_object_new_int(cfg[PCI_INTERRUPT_PIN]));
	add(root, "bars", bars);
	json_object *caps = json_object_new_array();
	for (int i = 0; i < nstd; i++)
		json_object_array_add(caps, dump_std_cap(cfg, std[i], std, (unsigned)nstd));
	add(root, "capabilities", caps);
	json_object *ecaps = json_object_new_array();
	for (int i = 0; i < next; i++)
		json_object_array_add(ecaps, dump_ext_cap(cfg, ext[i], ext, (unsigned)next));
	add(root, "extended_capabilities", ecaps);

	const char *s = json_object_to_json_string_ext(
		root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
	char *out = s ? malloc(strlen(s) + 2) : NULL;
	if (out) {
		strcpy(out, s);
		strcat(out, "\n");
	} else {
		snprintf(err, errlen, "out of memory");
	}
	json_object_put(root);
	return out;
}
