/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file region.h
 * The shared region: created by one primary per name, attached by any
 * number of secondaries at any address.
 *
 * Objects inside a region refer to each other by offset from the region
 * base (mpops_off_t), never by pointer: a secondary may map the region at a
 * different address than the primary. Offset 0 is the region header, so it
 * doubles as "no object" (MPOPS_OFF_NULL).
 *
 * A region is two memory objects mapped back to back, one range of
 * offsets: the host part [0, dev_off) holds the header, the tables, the
 * ports' and queues' state and the pools' bookkeeping; the device part
 * [dev_off, size) holds only what a device reads and writes, rings and
 * packet buffers (mpops_alloc_dev()). A device (a vhost-user backend, a
 * PCI device through the IOMMU) is given the device part alone
 * (mpops_region_dev()), so nothing it writes can reach the state the
 * processes share.
 */
#ifndef MPOPS_REGION_H
#define MPOPS_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mpops/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Offset of a shared object from its region's base. */
typedef uint64_t mpops_off_t;
#define MPOPS_OFF_NULL ((mpops_off_t)0)

/** Longest region name, without the terminating NUL. */
#define MPOPS_NAME_MAX 31

/** Opaque per-process handle of an attached region. */
struct mpops_region;

/** Where the region's memory comes from. */
enum mpops_backing {
	MPOPS_BACKING_MEMFD = 0,	/**< memfd, normal pages (default) */
	MPOPS_BACKING_MEMFD_HUGETLB,	/**< memfd with MFD_HUGETLB */
	MPOPS_BACKING_HUGETLBFS,	/**< a file on a mounted hugetlbfs */
};

/** Process role in a region. */
enum mpops_role {
	MPOPS_ROLE_PRIMARY = 1,
	MPOPS_ROLE_SECONDARY = 2,
};

/** mpops_region_opts.flags */
#define MPOPS_REGION_F_NUMA	(1u << 0) /**< place memory on numa_node */
/**
 * Record the physical address of every page at create, for devices that
 * reach memory by physical address (a PCI device bound to uio_pci_generic,
 * or a legacy virtio device, whose DMA bypasses the IOMMU). Needs a
 * hugepage backing (hugepages do not move) and root (CAP_SYS_ADMIN, to
 * read /proc/self/pagemap). See mpops_region_iova().
 */
#define MPOPS_REGION_F_PHYS	(1u << 1)
/**
 * Let processes of group @c gid attach too (with MPOPS_ATTACH_F_GROUP and
 * the same gid). Without it only the primary's uid and root may, whatever
 * the socket's mode. The control socket then belongs to that group with
 * mode 0660 (unless socket_mode says otherwise), and a runtime directory
 * the primary creates gets mode 0750 and that group. The primary must be
 * root or a member of the group. A runtime directory both sides agree on
 * is needed: the default one depends on the uid (see mpops_runtime_dir()).
 */
#define MPOPS_REGION_F_GROUP	(1u << 2)

/** How device addresses of a region are formed (mpops_region_iova()). */
enum mpops_iova_mode {
	MPOPS_IOVA_OFF = 0,	/**< the region offset (a vhost-user memory table
				     that maps the region at address 0) */
	MPOPS_IOVA_PA = 1,	/**< physical addresses (MPOPS_REGION_F_PHYS) */
};

/**
 * Options for mpops_region_create(). Zero-initialise, then set @c sz to
 * sizeof(struct mpops_region_opts) so later versions can grow the struct.
 */
struct mpops_region_opts {
	size_t sz;		/**< sizeof(struct mpops_region_opts) */
	size_t size;		/**< bytes of both parts; 0 = 16 MiB. Rounded up to
				     the page size (the hugepage size for a
				     hugepage backing) */
	enum mpops_backing backing;
	const char *hugetlbfs_dir; /**< MPOPS_BACKING_HUGETLBFS; NULL = /dev/hugepages */
	uint32_t flags;		/**< MPOPS_REGION_F_* */
	int numa_node;		/**< with MPOPS_REGION_F_NUMA */
	const char *runtime_dir; /**< NULL = default, see mpops_runtime_dir() */
	unsigned socket_mode;	/**< control socket file mode; 0 = 0600, or
				     0660 with MPOPS_REGION_F_GROUP. Who may
				     attach is decided by credentials, not by
				     this mode: the primary's uid, root, or
				     the group MPOPS_REGION_F_GROUP allows */
	uint32_t gid;		/**< with MPOPS_REGION_F_GROUP */
	size_t dev_size;	/**< bytes of @c size for the device part (rings
				     and packet buffers); 0 = three quarters,
				     leaving the host part at least 2 MiB.
				     Rounded up like @c size */
};

/** mpops_attach_opts.flags */
#define MPOPS_ATTACH_F_READONLY	(1u << 0) /**< map read-only; no process-table
					       entry, no new ops IDs (dump tools) */
/** Accept a primary of another uid if it is a member of group @c gid (the
 *  group it lets attach, MPOPS_REGION_F_GROUP). Without it, a secondary
 *  attaches only to a primary of its own uid or root. */
#define MPOPS_ATTACH_F_GROUP	(1u << 1)

/** Options for mpops_region_attach(); same sizing rule as above. */
struct mpops_attach_opts {
	size_t sz;		/**< sizeof(struct mpops_attach_opts) */
	uint32_t flags;		/**< MPOPS_ATTACH_F_* */
	const char *runtime_dir; /**< NULL = default, see mpops_runtime_dir() */
	int timeout_ms;		/**< for the hand-shake; 0 = 5000 */
	uint32_t gid;		/**< with MPOPS_ATTACH_F_GROUP */
};

/**
 * Create region @p name as its primary: allocate and map the memory, write
 * the header, register this process and bind its ops tables, and start the
 * control channel (a unix socket in the runtime directory, served by a
 * thread of this process).
 *
 * Any thread, once per name and process.
 * @return 0 and *out, or
 *   -EINVAL bad name or options; -EBUSY another primary holds @p name (the
 *   log names its pid); -EACCES runtime directory not writable;
 *   -ENOMEM/-ENOSPC memory (e.g. no free hugepages); -ENODEV hugetlbfs not
 *   mounted or NUMA node does not exist; -EPROTO an ops class signature
 *   clash with a registry this process already uses; or the errno of an
 *   ops registration that failed at load time, logged now (see
 *   mpops_ops_bind()).
 */
MPOPS_API int mpops_region_create(const char *name,
				  const struct mpops_region_opts *opts,
				  struct mpops_region **out);

/**
 * Attach to region @p name as a secondary: connect to the primary's control
 * socket, pass the peer-credential check, receive the region fd, map it,
 * verify the header, register in the process table and bind this process's
 * ops tables to the shared name table.
 *
 * @return 0 and *out, or
 *   -ENOENT no primary is running for @p name; -EACCES permission denied by
 *   the socket or the primary's credential check; -EPROTO ABI version or
 *   layout hash differ from the primary's, or an ops class signature
 *   differs (the log names class and implementation); -ENOSPC process table
 *   or ops name table full; -ETIMEDOUT the primary did not answer;
 *   -EBADMSG malformed hand-shake; or the errno of an ops registration
 *   that failed at load time, logged now (see mpops_ops_bind()).
 */
MPOPS_API int mpops_region_attach(const char *name,
				  const struct mpops_attach_opts *opts,
				  struct mpops_region **out);

/**
 * Detach: run the detach hooks of every per-process object slot, leave the
 * process table and unmap. In the primary this also stops the control
 * channel and removes the socket and lock file; secondaries still attached
 * get -ENOTCONN from their next call that needs the primary.
 * @return 0 or -EINVAL (NULL handle). @p r is freed either way.
 */
MPOPS_API int mpops_region_detach(struct mpops_region *r);

/** Base address of the region in this process. */
MPOPS_API void *mpops_region_base(const struct mpops_region *r);
/** Size in bytes of the region. */
MPOPS_API size_t mpops_region_size(const struct mpops_region *r);
/** Name of the region. */
MPOPS_API const char *mpops_region_name(const struct mpops_region *r);
/** Role of this process in the region. */
MPOPS_API enum mpops_role mpops_region_role(const struct mpops_region *r);
/**
 * The fd of the region's host part in this process (memfd or hugetlbfs
 * file). Owned by the region: do not close it. Never hand it to a device:
 * mpops_region_dev() gives what a device may map.
 */
MPOPS_API int mpops_region_fd(const struct mpops_region *r);

/** The region's device part, the only memory to give a device. */
struct mpops_region_dev {
	mpops_off_t off;	/**< its first region offset (page aligned) */
	size_t size;		/**< its bytes */
	void *addr;		/**< where it is mapped in this process */
	int fd;			/**< its memfd or hugetlbfs file, mapped from
				     file offset 0; owned by the region */
};

/**
 * Fill @p d with the device part: for a vhost-user memory table (one
 * region: guest address @c off, size @c size, user address @c addr, fd
 * @c fd, mmap offset 0), or an IOMMU mapping. Device addresses
 * (mpops_region_iova()) exist only inside it.
 * @return 0, -EINVAL NULL arguments.
 */
MPOPS_API int mpops_region_dev(const struct mpops_region *r, struct mpops_region_dev *d);
/** How device addresses are formed in this region. */
MPOPS_API enum mpops_iova_mode mpops_region_iova_mode(const struct mpops_region *r);

/**
 * Device address of @p len bytes at region offset @p off: the offset
 * itself (MPOPS_IOVA_OFF), or the physical address (MPOPS_IOVA_PA). The
 * same in every process. Any thread; a table lookup, no system call.
 * @return 0 and *iova, or -ERANGE outside the device part (the host part
 *   has no device address: allocate what a device reaches with
 *   mpops_alloc_dev()), -EFAULT the bytes
 *   span two pages that are not physically adjacent (allocate with an
 *   alignment of at least their size to keep them in one page).
 */
MPOPS_API int mpops_region_iova(const struct mpops_region *r, mpops_off_t off, size_t len,
				uint64_t *iova);

/**
 * The size of the pages whose addresses MPOPS_IOVA_PA records (e.g. 2 MiB),
 * or the normal page size for MPOPS_IOVA_OFF.
 */
MPOPS_API size_t mpops_region_page_size(const struct mpops_region *r);

/** 1 if this process may write the region, 0 for a read-only attach. */
MPOPS_API int mpops_region_is_writable(const struct mpops_region *r);
/** pid of the primary that created the region. */
MPOPS_API int mpops_region_primary_pid(const struct mpops_region *r);

/**
 * Check that the primary is alive.
 * @return 0, -ENOTCONN the primary has exited (logged once), -EINVAL.
 */
MPOPS_API int mpops_region_primary_check(struct mpops_region *r);

/** Called once in a secondary when its primary is gone. */
typedef void (*mpops_primary_exit_fn)(struct mpops_region *r, void *arg);

/** Most callbacks mpops_region_on_primary_exit() keeps per region. */
#define MPOPS_PRIMARY_EXIT_CB_MAX 8

/**
 * Secondary: call @p fn(@p r, @p arg) once when the primary is gone (it
 * exited, was killed, or detached the region). A thread of the library,
 * started by mpops_region_attach(), waits for the primary's end of the
 * control connection to hang up, which the kernel does as the primary's
 * process ends: the secondary learns of it at once, without calling
 * anything. By the time @p fn runs, the line "its primary (pid N) has
 * exited" is logged, mpops_region_primary_check() is -ENOTCONN, the fd of
 * mpops_region_primary_exit_fd() is readable, and the region's ports report
 * link down and their bursts return 0 in this process (a burst already
 * running completes). The shared memory stays mapped until detach: close
 * ports and detach as usual.
 *
 * @p fn runs on the library's thread and must not detach the region (set a
 * flag, write to a pipe, and detach from another thread). If the primary
 * is already gone, @p fn runs at once, in the calling thread. Any thread.
 * @return 0, -EPERM in the primary, -ENOSPC MPOPS_PRIMARY_EXIT_CB_MAX
 *   callbacks already, -EINVAL.
 */
MPOPS_API int mpops_region_on_primary_exit(struct mpops_region *r,
					   mpops_primary_exit_fn fn, void *arg);

/**
 * Secondary: an fd that becomes readable (POLLIN) when the primary is gone
 * (see mpops_region_on_primary_exit()), for a poll or epoll loop. It
 * belongs to the region: do not read or close it.
 * @return the fd, -EPERM in the primary, -EINVAL.
 */
MPOPS_API int mpops_region_primary_exit_fd(const struct mpops_region *r);

/**
 * Resolve the runtime directory for @p override (NULL = default): the
 * override, else $MPOPS_RUNTIME_DIR, else $XDG_RUNTIME_DIR/mpops, else
 * /run/mpops when root, else /tmp/mpops-UID.
 * @return length written (without NUL) or -ENAMETOOLONG.
 */
MPOPS_API int mpops_runtime_dir(const char *override, char *buf, size_t len);

/* ---- offsets ---------------------------------------------------------- */

/** Pointer for offset @p off in a region mapped at @p base; NULL for 0. */
static inline void *mpops_ptr(void *base, mpops_off_t off)
{
	return off ? (char *)base + off : NULL;
}

/** Offset of @p p in a region mapped at @p base; 0 for NULL. */
static inline mpops_off_t mpops_off(const void *base, const void *p)
{
	return p ? (mpops_off_t)((const char *)p - (const char *)base) : 0;
}

/** Typed form of mpops_ptr(): MPOPS_PTR(base, off, struct foo_shared). */
#define MPOPS_PTR(base, off, type) ((type *)mpops_ptr((base), (off)))

/**
 * Checked conversion for offsets that came from a less trusted place
 * (a message, another process): @p off .. @p off + @p len must lie inside
 * the region and past its header.
 * @return 0 and *out, or -ERANGE (logged).
 */
MPOPS_API int mpops_region_ptr(struct mpops_region *r, mpops_off_t off,
			       size_t len, void **out);

/* ---- allocation ------------------------------------------------------- */

/**
 * Allocate @p size bytes of zeroed shared memory aligned to @p align (a
 * power of two; 0 = 64). @p tag (up to 31 chars, may be NULL) names the
 * object in audit reports and mpops-info. Any attached process, any
 * thread; safe against concurrent callers in other processes and against
 * a process dying inside the allocator (the next call undoes what it left
 * half done, from an undo log, and checks the heap).
 * @return 0 and *out, or -EINVAL bad size/alignment, -ENOMEM region full,
 *   -EROFS read-only attach, -ENOTRECOVERABLE a process died inside the
 *   allocator and its heap could not be repaired (logged; every later
 *   allocator call fails so: recreate the region).
 */
MPOPS_API int mpops_alloc(struct mpops_region *r, size_t size, size_t align,
			  const char *tag, mpops_off_t *out);

/**
 * Allocate @p size bytes of zeroed memory in the device part, aligned to
 * @p align (a power of two; 0 = 64): for what a device reads or writes
 * (rings, packet buffers), and nothing else, since a device may write all
 * of it. The part's bookkeeping lives in the host part. Same safety as
 * mpops_alloc(); free with mpops_free().
 * @return 0 and *out, or -EINVAL bad size/alignment, -ENOMEM device part
 *   full, -ENOSPC its table of 256 extents full, -EROFS read-only attach,
 *   -ENOTRECOVERABLE (see mpops_alloc()).
 */
MPOPS_API int mpops_alloc_dev(struct mpops_region *r, size_t size, size_t align,
			      const char *tag, mpops_off_t *out);

/**
 * Free an object allocated by mpops_alloc() or mpops_alloc_dev() (its
 * bytes are zeroed, or, in the device part, zeroed when next allocated).
 * @return 0, -EINVAL not an allocated object (double free, bad offset),
 *   -EROFS read-only attach, -ENOTRECOVERABLE (see mpops_alloc()).
 */
MPOPS_API int mpops_free(struct mpops_region *r, mpops_off_t off);

/** Allocator figures, for tests and tools. */
struct mpops_alloc_stats {
	uint64_t bytes_total;	/**< host part: heap size after the header */
	uint64_t bytes_used;	/**< including block headers */
	uint32_t objects;	/**< live allocations */
	uint32_t free_blocks;
	uint64_t dev_bytes_total; /**< device part: its size */
	uint64_t dev_bytes_used;
	uint32_t dev_objects;
	uint32_t pad;
};

/** Fill @p st. @return 0, -EINVAL, -ENOTRECOVERABLE (see mpops_alloc()). */
MPOPS_API int mpops_alloc_stats(struct mpops_region *r,
				struct mpops_alloc_stats *st);

/**
 * Find the allocated object containing offset @p off (either part).
 * @return 0 with its start offset, size and tag (tag buffer of at least
 *   MPOPS_NAME_MAX + 1 bytes, may be NULL), or -ENOENT, -ENOTRECOVERABLE
 *   (see mpops_alloc()).
 */
MPOPS_API int mpops_alloc_find(struct mpops_region *r, mpops_off_t off,
			       mpops_off_t *start, size_t *size, char *tag);

/* ---- named roots ------------------------------------------------------ */

/** Number of named roots a region holds. */
#define MPOPS_ROOTS_MAX 64

/**
 * Publish shared object @p off under @p name so other processes can find
 * it (e.g. a port by its name). Any process with a writable attach.
 * @return 0, -EEXIST name taken, -ENOSPC no free root, -EINVAL, -EROFS.
 */
MPOPS_API int mpops_root_set(struct mpops_region *r, const char *name,
			     mpops_off_t off);

/** Look up a published name. @return 0 and *off, or -ENOENT. */
MPOPS_API int mpops_root_get(struct mpops_region *r, const char *name,
			     mpops_off_t *off);

/** Remove a published name. @return 0, -ENOENT, -EROFS. */
MPOPS_API int mpops_root_del(struct mpops_region *r, const char *name);

#ifdef __cplusplus
}
#endif
#endif /* MPOPS_REGION_H */
