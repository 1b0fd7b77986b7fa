/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file audit.h
 * Find process-local addresses stored in shared memory, at run time; and
 * the marks that mpops-audit-types, the static audit of shared *types*,
 * reads (mpops_fd_t, MPOPS_AUDIT_ALLOW; see the end of this file).
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
 * Audit region @p r's host part as seen from this process (its device
 * part holds only what devices write, rings and packet bytes, which may be
 * anything and is never read back as an address). Up to @p max
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

/* ---- marks for the static audit (mpops-audit-types, doc/audit.md) ------ */

/**
 * A process-local integer: an fd, or any handle that means something in one
 * process only. Declaring a member with this type makes mpops-audit-types
 * report it when it is reachable from a *_shared struct (so does an integer
 * member whose name ends in "fd" or "fds"). It belongs in a *_local struct.
 */
typedef int mpops_fd_t;

/**
 * Allow one member of a shared struct that mpops-audit-types would report
 * (a pointer, function pointer or process-local integer), with the reason
 * it is correct anyway; the tool prints it as "allowed, because REASON"
 * instead of failing. Put it at file scope right after the struct, in the
 * header that declares it:
 *
 *     MPOPS_AUDIT_ALLOW(shlock, m, "a robust process-shared pthread mutex: ...");
 *
 * (lib/priv.h has that one: pthread_mutex_t holds glibc's robust-list links.)
 *
 * @p tag is the struct's tag (struct tag), @p member a member or a path of
 * members (a.b, a[0].b): everything inside it is allowed, wherever the
 * struct is nested. It must exist (checked at compile time with offsetof).
 * @p reason is a string literal. MPOPS_AUDIT_ALLOW_TYPE takes a type name
 * instead (a typedef, or "union u").
 *
 * How it works: GCC and clang do not put attributes into DWARF, so the
 * macro defines an unused static string in the ELF section
 * "mpops_audit_allow" ("mpops-audit-allow", type, member and reason, each
 * NUL-terminated), kept by the "used" attribute in the object file and in
 * whatever it is linked into; the tool reads that section from the file it
 * audits. A few dozen bytes of read-only data per translation unit that
 * includes the header.
 */
#define MPOPS_AUDIT_ALLOW(tag, member, reason) \
	MPOPS__AUDIT_ALLOW(struct tag, #tag, member, reason)
/** MPOPS_AUDIT_ALLOW for a type named otherwise than by a struct tag. */
#define MPOPS_AUDIT_ALLOW_TYPE(type, member, reason) \
	MPOPS__AUDIT_ALLOW(type, #type, member, reason)

/* Internal. */
#define MPOPS__AUDIT_CAT2(a, b) a##b
#define MPOPS__AUDIT_CAT(a, b) MPOPS__AUDIT_CAT2(a, b)
#define MPOPS__AUDIT_ALLOW(type, name, member, reason)                        \
	_Static_assert(offsetof(type, member) <= sizeof(type),                \
		       "MPOPS_AUDIT_ALLOW: " name " has a member " #member);  \
	__attribute__((used, section("mpops_audit_allow"))) static const char \
	MPOPS__AUDIT_CAT(mpops__audit_allow_, __COUNTER__)[] =               \
		"mpops-audit-allow\0" name "\0" #member "\0" reason

#ifdef __cplusplus
}
#endif
#endif /* MPOPS_AUDIT_H */
