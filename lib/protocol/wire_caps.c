/* SPDX-License-Identifier: MIT */
/*
 * VERSION capabilities: the JSON object carried after major/minor, parsed
 * and written with json-c, and the negotiation rules of both sides.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "devmig/wire.h"

#define E(x) DEVMIG_WIRE_E_##x
#define OK DEVMIG_WIRE_OK

/* Nesting the tokener accepts: root, capabilities, a member object, one spare. */
#define CAPS_MAX_DEPTH 8
/* More fds than any one message of this protocol carries. */
#define CAPS_MAX_MSG_FDS 1024u
#define PGSIZE_LOW_BITS (DEVMIG_MIN_PAGE_SIZE - 1)

void devmig_caps_default(struct devmig_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	caps->max_msg_fds = DEVMIG_DEFAULT_MAX_MSG_FDS;
	caps->max_data_xfer_size = DEVMIG_DEFAULT_MAX_DATA_XFER;
	caps->max_dma_maps = DEVMIG_DEFAULT_MAX_DMA_MAPS;
	caps->pgsizes = DEVMIG_DEFAULT_PGSIZES;
	caps->write_multiple = false;
	caps->twin_socket = false;
	caps->ext = 0;
	caps->migration = false;
	caps->mig_pgsize = DEVMIG_DEFAULT_MIG_PGSIZE;
	caps->mig_max_bitmap_size = DEVMIG_DEFAULT_MAX_BITMAP_SIZE;
}

/* A JSON integer in [lo, hi]; negative numbers and non-integers refused. */
static enum devmig_wire_err get_uint(struct json_object *o, uint64_t lo, uint64_t hi,
				     uint64_t *out)
{
	uint64_t v;

	if (!json_object_is_type(o, json_type_int))
		return E(JSON);
	if (json_object_get_int64(o) < 0)
		return E(JSON);
	/* Values beyond 2^64-1 saturate to UINT64_MAX, which every caller refuses. */
	v = json_object_get_uint64(o);
	if (v < lo || v > hi)
		return E(JSON);
	*out = v;
	return OK;
}

/* Member name of obj as an integer in [lo, hi], if present. */
static enum devmig_wire_err member_uint(struct json_object *obj, const char *name,
					uint64_t lo, uint64_t hi, uint64_t *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, name, &v))
		return OK;
	return get_uint(v, lo, hi, out);
}

static enum devmig_wire_err member_bool(struct json_object *obj, const char *name, bool *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, name, &v))
		return OK;
	if (!json_object_is_type(v, json_type_boolean))
		return E(JSON);
	*out = json_object_get_boolean(v);
	return OK;
}

/* Member name of obj, if present, must be an object: *out, else NULL. */
static enum devmig_wire_err member_object(struct json_object *obj, const char *name,
					  struct json_object **out)
{
	struct json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(obj, name, &v))
		return OK;
	if (!json_object_is_type(v, json_type_object))
		return E(JSON);
	*out = v;
	return OK;
}

/* The project's extensions: their names in the "devmig" member. */
static const struct {
	const char *name;
	uint32_t flag;
} extensions[] = {
	{ "precopy_info", DEVMIG_EXT_PRECOPY_INFO },
	{ "mig_status", DEVMIG_EXT_MIG_STATUS },
	{ "compat", DEVMIG_EXT_COMPAT },
	{ "exact_mig_read", DEVMIG_EXT_EXACT_MIG_READ },
	{ "data_fd", DEVMIG_EXT_DATA_FD },
	{ "deadline", DEVMIG_EXT_DEADLINE },
	{ "dirty_rate", DEVMIG_EXT_DIRTY_RATE },
};

static enum devmig_wire_err parse_caps(struct json_object *caps, struct devmig_caps *out)
{
	struct json_object *sub;
	enum devmig_wire_err err;
	uint64_t v;
	bool b;

	v = out->max_msg_fds;
	if ((err = member_uint(caps, "max_msg_fds", 0, CAPS_MAX_MSG_FDS, &v)))
		return err;
	out->max_msg_fds = (uint32_t)v;

	v = out->max_data_xfer_size;
	if ((err = member_uint(caps, "max_data_xfer_size", 1, UINT32_MAX, &v)))
		return err;
	out->max_data_xfer_size = (uint32_t)v;

	v = out->max_dma_maps;
	if ((err = member_uint(caps, "max_dma_maps", 0, UINT32_MAX, &v)))
		return err;
	out->max_dma_maps = (uint32_t)v;

	v = out->pgsizes;
	if ((err = member_uint(caps, "pgsizes", 1, UINT64_MAX, &v)))
		return err;
	if (v & PGSIZE_LOW_BITS)
		return E(JSON);
	out->pgsizes = v;

	if ((err = member_bool(caps, "write_multiple", &out->write_multiple)))
		return err;

	if ((err = member_object(caps, "twin_socket", &sub)))
		return err;
	if (sub && (err = member_bool(sub, "supported", &out->twin_socket)))
		return err;

	if ((err = member_object(caps, "migration", &sub)))
		return err;
	if (sub) {
		out->migration = true;
		v = out->mig_pgsize;
		if ((err = member_uint(sub, "pgsize", DEVMIG_MIN_PAGE_SIZE, UINT64_MAX, &v)))
			return err;
		if (v & (v - 1))
			return E(JSON); /* a page size is a power of two */
		out->mig_pgsize = v;
		v = out->mig_max_bitmap_size;
		if ((err = member_uint(sub, "max_bitmap_size", 1, UINT64_MAX - 1, &v)))
			return err;
		out->mig_max_bitmap_size = v;
	}

	if ((err = member_object(caps, "devmig", &sub)))
		return err;
	for (size_t i = 0; sub && i < sizeof(extensions) / sizeof(extensions[0]); i++) {
		b = false;
		if ((err = member_bool(sub, extensions[i].name, &b)))
			return err;
		if (b)
			out->ext |= extensions[i].flag;
	}
	return OK;
}

static bool json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}


enum devmig_wire_err devmig_caps_parse(const char *json, size_t json_len,
				       struct devmig_caps *out)
{
	struct devmig_caps caps;
	struct json_tokener *tok;
	struct json_object *root = NULL, *c;
	enum devmig_wire_err err = E(JSON);
	size_t end;

	devmig_caps_default(out);
	if (!json || json_len == 0)
		return OK;
	if (json_len >= INT_MAX || memchr(json, '\0', json_len))
		return E(JSON);

	tok = json_tokener_new_ex(CAPS_MAX_DEPTH);
	if (!tok)
		return E(JSON);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, json, (int)json_len);
	if (!root || json_tokener_get_error(tok) != json_tokener_success)
		goto out;
	/* The whole text is one value: only white space may follow it. */
	end = json_tokener_get_parse_end(tok);
	if (end > json_len)
		goto out;
	for (; end < json_len; end++)
		if (!json_space(json[end]))
			goto out;
	if (!json_object_is_type(root, json_type_object))
		goto out;

	devmig_caps_default(&caps);
	if ((err = member_object(root, "capabilities", &c)))
		goto out;
	if (c && (err = parse_caps(c, &caps)))
		goto out;
	*out = caps;
	err = OK;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return err;
}

size_t devmig_caps_format(const struct devmig_caps *caps, char *buf, size_t cap)
{
	char ext[256] = "", mig[96] = "";
	size_t el = 0;

	if (caps->migration)
		snprintf(mig, sizeof(mig),
			 ",\"migration\":{\"pgsize\":%" PRIu64 ",\"max_bitmap_size\":%" PRIu64 "}",
			 caps->mig_pgsize, caps->mig_max_bitmap_size);

	/* "devmig":{...} only when some extension is offered or asked for. */
	for (size_t i = 0; i < sizeof(extensions) / sizeof(extensions[0]); i++) {
		if (!(caps->ext & extensions[i].flag))
			continue;
		el += (size_t)snprintf(ext + el, sizeof(ext) - el, "%s\"%s\":true",
				       el ? "," : ",\"devmig\":{", extensions[i].name);
	}
	if (el)
		snprintf(ext + el, sizeof(ext) - el, "}");

	int n = snprintf(buf, cap,
			 "{\"capabilities\":{\"max_msg_fds\":%" PRIu32
			 ",\"max_data_xfer_size\":%" PRIu32 ",\"max_dma_maps\":%" PRIu32
			 ",\"pgsizes\":%" PRIu64 ",\"write_multiple\":%s%s%s%s}}",
			 caps->max_msg_fds, caps->max_data_xfer_size, caps->max_dma_maps,
			 caps->pgsizes, caps->write_multiple ? "true" : "false",
			 caps->twin_socket ? ",\"twin_socket\":{\"supported\":true}" : "", mig, ext);
	if (n < 0 || (size_t)n >= cap)
		return 0;
	return (size_t)n;
}

enum devmig_wire_err devmig_caps_negotiate(const struct devmig_caps *proposed,
					   const struct devmig_caps *supported,
					   struct devmig_caps *reply)
{
	struct devmig_caps r;

	devmig_caps_default(&r);
	/* Each side states what it can receive: ours. */
	r.max_msg_fds = supported->max_msg_fds;
	r.max_data_xfer_size = supported->max_data_xfer_size;
	r.max_dma_maps = supported->max_dma_maps;
	r.pgsizes = proposed->pgsizes & supported->pgsizes;
	r.write_multiple = proposed->write_multiple && supported->write_multiple;
	r.twin_socket = proposed->twin_socket && supported->twin_socket;
	r.ext = proposed->ext & supported->ext & DEVMIG_EXT_ALL;
	r.migration = proposed->migration && supported->migration;
	if (r.migration) {
		r.mig_pgsize = proposed->mig_pgsize < supported->mig_pgsize ? proposed->mig_pgsize
									    : supported->mig_pgsize;
		r.mig_max_bitmap_size = proposed->mig_max_bitmap_size < supported->mig_max_bitmap_size
						? proposed->mig_max_bitmap_size
						: supported->mig_max_bitmap_size;
	}
	if (r.pgsizes == 0)
		return E(VERSION);
	*reply = r;
	return OK;
}

enum devmig_wire_err devmig_version_check_reply(uint16_t our_major, uint16_t our_minor,
						const struct devmig_caps *proposed,
						uint16_t reply_major, uint16_t reply_minor,
						const struct devmig_caps *reply)
{
	if (reply_major != our_major || reply_minor > our_minor)
		return E(VERSION);
	/* What we did not propose is not used, not refused (devmig_caps_usable). */
	if ((reply->pgsizes & proposed->pgsizes) == 0)
		return E(VERSION);
	return OK;
}

void devmig_caps_usable(const struct devmig_caps *proposed, const struct devmig_caps *reply,
			struct devmig_caps *usable)
{
	*usable = *reply;
	usable->write_multiple = reply->write_multiple && proposed->write_multiple;
	usable->twin_socket = reply->twin_socket && proposed->twin_socket;
	usable->ext = reply->ext & proposed->ext;
	usable->pgsizes = reply->pgsizes & proposed->pgsizes;
}
