/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file audit.h
 * Find process-local addresses stored in shared memory.
 *
 * The audit reads /proc/self/maps and scans shared memory one aligned
 * 64-bit word at a time for values that fall inside this process's
 * executable mappings (code), its heap, its stacks, or the region's own
 * mapping (a pointer where an offset belongs). Each hit is reported with
 * its offset and, in a region, the allocated object that contains it.
 *
 * "Heap" means the brk heap that /proc/self/maps calls [heap]: where
 * glibc's malloc puts small allocations of the main thread. Large
 * allocations and other threads' arenas are anonymous mappings that the
 * audit cannot tell from any other memory, so pointers into them are
 * missed (false negatives); so are pointers into other threads' stacks.
 *
 * False positives are possible: data that merely looks like an address
 * (a random 64-bit value, a hash, a packet payload byte pattern) is
 * reported too. With ASLR the chance that such a value falls in one of the
 * scanned ranges is small but not zero; inspect each finding. Pointers
 * inside packet payloads can be excluded by auditing before traffic or by
 * skipping the objects that hold payloads (@p skip_tag_prefix).
 */
#ifndef MPOPS_AUDIT_H
#define MPOPS_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <mpops/common.h>
#include <mpops/region.h>

#ifdef __cplusplus
extern "C" {
#endif

/** What a suspicious word points into. */
enum mpops_audit_kind {
	MPOPS_AUDIT_CODE = 1,	/**< an executable mapping: a function pointer */
	MPOPS_AUDIT_HEAP,	/**< [heap]: private malloc'd memory */
	MPOPS_AUDIT_STACK,	/**< [stack] or this thread's stack */
	MPOPS_AUDIT_REGION,	/**< the region's own mapping: use an offset */
};

/** One finding. */
struct mpops_audit_finding {
	mpops_off_t off;	/**< where the word is, from the scanned base */
	uint64_t value;		/**< the word */
	enum mpops_audit_kind kind;
	char mapping[64];	/**< the mapping's path or [heap]/[stack] */
	char object[MPOPS_NAME_MAX + 1]; /**< containing object's tag, or "" */
	mpops_off_t object_off;	/**< containing object's start, or 0 */
};

/** Name of a finding kind ("code", "heap", "stack", "region"). */
MPOPS_API const char *mpops_audit_kind_name(enum mpops_audit_kind kind);

/**
 * Audit the whole region @p r as seen from this process. Up to @p max
 * findings are stored in @p out (may be NULL with @p max 0); each is also
 * logged at MPOPS_LOG_WARN. Objects whose tag starts with
 * @p skip_tag_prefix (may be NULL) are not scanned.
 * @return the number of findings (may exceed @p max), -EIO /proc/self/maps
 *   unreadable, -EINVAL.
 */
MPOPS_API int mpops_audit(struct mpops_region *r, const char *skip_tag_prefix,
			  struct mpops_audit_finding *out, unsigned max);

/**
 * Audit @p len bytes of shared memory at @p base that mpops did not
 * allocate (e.g. a name table in a DPDK memzone). Same reporting.
 * @return the number of findings, -EIO, -EINVAL.
 */
MPOPS_API int mpops_audit_mem(const void *base, size_t len,
			      struct mpops_audit_finding *out, unsigned max);

#ifdef __cplusplus
}
#endif
#endif /* MPOPS_AUDIT_H */
