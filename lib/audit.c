/* SPDX-License-Identifier: BSD-3-Clause */
/* Scan shared memory for addresses private to this process. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpops/audit.h>

#include "pkt_priv.h"
#include "region_priv.h"

struct range {
	uintptr_t lo, hi;
	enum mpops_audit_kind kind;
	char path[64];
};

struct ranges {
	struct range *v;
	unsigned n, cap;
};

static int ranges_add(struct ranges *rs, uintptr_t lo, uintptr_t hi,
		      enum mpops_audit_kind kind, const char *path)
{
	if (rs->n == rs->cap) {
		unsigned cap = rs->cap ? rs->cap * 2 : 64;
		struct range *p = realloc(rs->v, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		rs->v = p;
		rs->cap = cap;
	}
	rs->v[rs->n] = (struct range){ .lo = lo, .hi = hi, .kind = kind };
	strlcpy(rs->v[rs->n].path, path, sizeof(rs->v[rs->n].path));
	rs->n++;
	return 0;
}

/* Code, heap and stacks of this process, from /proc/self/maps. */
static int ranges_load(struct ranges *rs)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	pthread_attr_t at;
	int rc = 0;

	if (!f) {
		log_err("audit: cannot read /proc/self/maps: %s", strerror(errno));
		return -EIO;
	}
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		uintptr_t lo, hi;
		char perms[8] = "", path[256] = "";

		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %*s %*s %*s %255[^\n]",
			   &lo, &hi, perms, path) < 3)
			continue;
		if (strcmp(path, "[heap]") == 0)
			rc = ranges_add(rs, lo, hi, MPOPS_AUDIT_HEAP, path);
		else if (strncmp(path, "[stack", 6) == 0)
			rc = ranges_add(rs, lo, hi, MPOPS_AUDIT_STACK, path);
		else if (perms[2] == 'x')
			rc = ranges_add(rs, lo, hi, MPOPS_AUDIT_CODE, path[0] ? path : "[anon exec]");
	}
	fclose(f);
	/* Threads' stacks are plain anonymous mappings: add the caller's. */
	if (rc == 0 && pthread_getattr_np(pthread_self(), &at) == 0) {
		void *addr;
		size_t sz;

		pthread_attr_getstack(&at, &addr, &sz);
		pthread_attr_destroy(&at);
		rc = ranges_add(rs, (uintptr_t)addr, (uintptr_t)addr + sz,
				MPOPS_AUDIT_STACK, "[thread stack]");
	}
	return rc;
}

const char *mpops_audit_kind_name(enum mpops_audit_kind kind)
{
	switch (kind) {
	case MPOPS_AUDIT_CODE: return "code";
	case MPOPS_AUDIT_HEAP: return "heap";
	case MPOPS_AUDIT_STACK: return "stack";
	case MPOPS_AUDIT_REGION: return "region";
	}
	return "?";
}

static int scan(struct mpops_region *r, const void *base, size_t len,
		const struct ranges *rs, const char *skip,
		struct mpops_audit_finding *out, unsigned max)
{
	const uint64_t *w = base;
	size_t nw = len / sizeof(*w);
	int found = 0;

	for (size_t i = 0; i < nw; i++) {
		uint64_t v = w[i];
		const struct range *hit = NULL;
		struct mpops_audit_finding fd = { 0 };

		/* Fast reject: user-space addresses live below 2^47. */
		if (v < 4096 || v >> 47)
			continue;
		for (unsigned k = 0; k < rs->n; k++) {
			if (v >= rs->v[k].lo && v < rs->v[k].hi) {
				hit = &rs->v[k];
				break;
			}
		}
		if (!hit)
			continue;
		fd.off = i * sizeof(*w);
		fd.value = v;
		fd.kind = hit->kind;
		strlcpy(fd.mapping, hit->path, sizeof(fd.mapping));
		if (r)
			mpops_alloc_find(r, fd.off, &fd.object_off, NULL, fd.object);
		if (skip && *skip && fd.object[0] && strncmp(fd.object, skip, strlen(skip)) == 0)
			continue;
		if (r && pktpool_holds_no_addresses(r, fd.object_off, fd.off))
			continue;
		log_warn("audit: %s pointer %#" PRIx64 " (%s) at offset %#" PRIx64 "%s%s%s: shared memory must hold IDs and offsets, not addresses",
			 mpops_audit_kind_name(fd.kind), v, fd.mapping, fd.off,
			 fd.object[0] ? " in object '" : "", fd.object,
			 fd.object[0] ? "'" : "");
		if ((unsigned)found < max)
			out[found] = fd;
		found++;
	}
	return found;
}

int mpops_audit(struct mpops_region *r, const char *skip_tag_prefix,
		struct mpops_audit_finding *out, unsigned max)
{
	struct ranges rs = { 0 };
	int rc;

	if (!r || (!out && max))
		return -EINVAL;
	if ((rc = ranges_load(&rs)) == 0)
		rc = ranges_add(&rs, (uintptr_t)r->base, (uintptr_t)r->base + r->size,
				MPOPS_AUDIT_REGION, "[this region]");
	/* The host part only: the device part holds what devices write
	 * (rings, packet bytes), which may be anything and is never read
	 * back as an address. */
	if (rc == 0)
		rc = scan(r, r->base, r->dev_off, &rs, skip_tag_prefix, out, max);
	free(rs.v);
	return rc;
}

int mpops_audit_mem(const void *base, size_t len, struct mpops_audit_finding *out,
		    unsigned max)
{
	struct ranges rs = { 0 };
	int rc;

	if (!base || (!out && max) || ((uintptr_t)base & 7))
		return -EINVAL;
	if ((rc = ranges_load(&rs)) == 0)
		rc = ranges_add(&rs, (uintptr_t)base, (uintptr_t)base + len,
				MPOPS_AUDIT_REGION, "[this memory]");
	if (rc == 0)
		rc = scan(NULL, base, len, &rs, NULL, out, max);
	free(rs.v);
	return rc;
}
