/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file proc.h
 * The process table of a region: who is attached, as what, from which
 * executable build.
 *
 * The primary notices a secondary's death when its control connection
 * closes and reclaims its entry (running the exit callbacks drivers
 * registered, e.g. to free its queue claims) and gives back the packet
 * buffers it held (pkt.h); mpops_proc_reap() also reclaims entries whose
 * process no longer exists (pid + start time; a zombie counts as gone),
 * and in the primary gives back what gone processes held in packet pools.
 */
#ifndef MPOPS_PROC_H
#define MPOPS_PROC_H

#include <stdint.h>

#include <mpops/common.h>
#include <mpops/region.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Capacity of a region's process table. */
#define MPOPS_PROC_MAX 64
/** Longest build-id in bytes (GNU build-ids are 20). */
#define MPOPS_BUILD_ID_MAX 32

/** One attached process, as read from the table. */
struct mpops_proc_info {
	int32_t pid;
	enum mpops_role role;
	uint64_t start_time;	/**< clock ticks since boot (/proc/PID/stat) */
	char exe[256];		/**< executable path */
	uint8_t build_id[MPOPS_BUILD_ID_MAX];
	uint32_t build_id_len;	/**< 0: executable has no build-id note */
};

/**
 * Copy up to @p max entries of the process table into @p out.
 * @return the number of attached processes (may exceed @p max), -EINVAL.
 */
MPOPS_API int mpops_proc_list(struct mpops_region *r,
			      struct mpops_proc_info *out, unsigned max);

/**
 * Reclaim the entries of processes that no longer exist (the same pid with
 * another start time counts as gone).
 * @return number reclaimed, -EROFS, -EINVAL.
 */
MPOPS_API int mpops_proc_reap(struct mpops_region *r);

/**
 * Is process @p pid with start time @p start_time (0 = any) still alive?
 * A zombie (it exited, its parent has not reaped it) is gone.
 * @return 1 alive, 0 gone.
 */
MPOPS_API int mpops_proc_alive(int32_t pid, uint64_t start_time);

/** Start time of process @p pid (0 if it does not exist). */
MPOPS_API uint64_t mpops_proc_start_time(int32_t pid);

/** Called in the primary when a secondary left or died. */
typedef void (*mpops_proc_exit_fn)(struct mpops_region *r,
				   const struct mpops_proc_info *p, int died,
				   void *arg);

/**
 * Add an exit callback (primary only), run on the channel thread.
 * @return 0, -ENOSPC, -EPERM not the primary, -EINVAL.
 */
MPOPS_API int mpops_proc_on_exit(struct mpops_region *r,
				 mpops_proc_exit_fn fn, void *arg);

/**
 * Build-id of the running executable.
 * @return its length in bytes (0: none), or -ENOSPC buffer too small.
 */
MPOPS_API int mpops_build_id(uint8_t *buf, size_t len);

/** Hex form of a build-id into @p buf (2 * len + 1 bytes). */
MPOPS_API void mpops_build_id_hex(const uint8_t *id, size_t len, char *buf);

#ifdef __cplusplus
}
#endif
#endif /* MPOPS_PROC_H */
