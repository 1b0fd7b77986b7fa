/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file pkt.h
 * Packet buffers in shared memory, usable from every attached process.
 *
 * A pool is created inside a region by any writable process: fixed-size
 * buffers, each with a metadata struct (struct mpops_pkt) and headroom.
 * Free buffers sit in a shared ring of buffer indices; every process (in
 * practice every thread that does rx/tx) opens its own handle with a local
 * cache, so the fast path is lock-free and touches the shared ring only
 * once per bulk refill or flush. That exchange runs under a robust shared
 * lock, so a process killed at any point (SIGKILL) cannot wedge the pool
 * for the others; the buffers in a dead process's cache are lost to the
 * pool.
 *
 * Everything in a buffer's metadata is an offset or plain data, so a
 * buffer allocated in one process may be freed in another. The fast path
 * (alloc and free through a handle's cache) has no locked instruction per
 * buffer; what that means for double frees is at mpops_pkt_free(). A multi-buffer
 * packet is a chain of segments linked by offset (@c next).
 */
#ifndef MPOPS_PKT_H
#define MPOPS_PKT_H

#include <stdint.h>

#include <mpops/common.h>
#include <mpops/region.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Metadata of one buffer (one segment), in shared memory. 64 bytes.
 * The buffer's bytes are at region offset @c buf_off, @c buf_len long;
 * the segment's data starts @c data_off bytes into it.
 */
struct mpops_pkt {
	mpops_off_t buf_off;	/**< region offset of the buffer (headroom first) */
	mpops_off_t next;	/**< region offset of the next segment's mpops_pkt, 0 = last */
	mpops_off_t pool;	/**< region offset of the owning pool */
	uint32_t pkt_len;	/**< whole packet, first segment only */
	uint16_t data_off;	/**< data start within the buffer */
	uint16_t data_len;	/**< bytes of data in this segment */
	uint16_t buf_len;	/**< buffer size, headroom included */
	uint16_t nb_segs;	/**< segments in the chain, first segment only */
	uint16_t port;		/**< free for drivers: input port */
	uint16_t queue;		/**< free for drivers: input queue */
	uint32_t index;		/**< buffer index in its pool (set at create) */
	uint32_t flags;		/**< MPOPS_PKT_F_* (internal use: allocated or free) */
	uint64_t udata;		/**< free for applications */
	uint64_t buf_iova;	/**< device address of the buffer (set at create:
				     mpops_region_iova() of buf_off) */
};

/** mpops_pkt.flags: set while the buffer is allocated (internal). */
#define MPOPS_PKT_F_ALLOCATED	(1u << 0)

/** Opaque per-process (per-thread) handle of a pool, with its cache. */
struct mpops_pktpool;

/** Options for mpops_pktpool_create(); zero-initialise, set sz. */
struct mpops_pktpool_opts {
	size_t sz;		/**< sizeof(struct mpops_pktpool_opts) */
	uint32_t count;		/**< buffers; 0 = 4096 */
	uint16_t buf_size;	/**< bytes per buffer incl. headroom; 0 = 2176 */
	uint16_t headroom;	/**< 0 = 128 */
	uint32_t cache_size;	/**< per-handle cache, at most count; 0 = 256
				     or count when smaller */
};

/** Largest per-handle cache, in buffers. */
#define MPOPS_PKTPOOL_CACHE_MAX 4096

/**
 * Create a pool in @p r, named @p name (published as a root under that
 * name; the memory object is tagged "pktpool.<name>"). @p opts may be NULL
 * for the defaults. Any writable attach, any thread.
 * @return 0 and the pool's offset in *out, or -EINVAL bad name or sizes
 *   (headroom >= buf_size, count > 2^24, cache_size > count or >
 *   MPOPS_PKTPOOL_CACHE_MAX), -ENOMEM region too small, -EEXIST name
 *   taken, -ENOSPC no free root, -EROFS read-only attach.
 */
MPOPS_API int mpops_pktpool_create(struct mpops_region *r, const char *name,
				   const struct mpops_pktpool_opts *opts,
				   mpops_off_t *out);

/**
 * Open a handle to the pool at @p pool (found e.g. with mpops_root_get()).
 * One handle per thread that allocates or frees: a handle is not
 * thread-safe, the pool is (any number of handles in any processes).
 * @return 0 and *out, -EINVAL not a pool (bad offset or magic, corrupt
 *   header), -EPROTO pool made by another mpops version, -EROFS read-only
 *   attach, -ENOMEM.
 */
MPOPS_API int mpops_pktpool_open(struct mpops_region *r, mpops_off_t pool,
				 struct mpops_pktpool **out);

/**
 * Return the handle's cached buffers to the pool and free the handle.
 * Buffers still allocated through it stay valid and may be freed through
 * any other handle of the pool. NULL is a no-op.
 */
MPOPS_API void mpops_pktpool_close(struct mpops_pktpool *p);

/**
 * Allocate @p n single-segment buffers (all or nothing), reset: data_off =
 * headroom, data_len = pkt_len = 0, nb_segs = 1, next = 0, port = queue =
 * udata = 0. One cache operation for the @p n (a refill from the shared
 * ring when the cache has fewer); no locked instruction per buffer.
 * A free-set entry whose buffer is allocated (a copy left by a concurrent
 * double free, see mpops_pkt_free()) is dropped and logged, and another
 * buffer taken in its place.
 * @return 0, or -ENOBUFS fewer than @p n buffers in the ring and this
 *   handle's cache (nothing allocated; logged once per handle, as this is
 *   a fast-path condition), -EINVAL NULL handle or pkts.
 */
MPOPS_API int mpops_pkt_alloc_bulk(struct mpops_pktpool *p,
				   struct mpops_pkt **pkts, unsigned n);

/** One buffer, or NULL when the pool is empty (see mpops_pkt_alloc_bulk()). */
MPOPS_API struct mpops_pkt *mpops_pkt_alloc(struct mpops_pktpool *p);

/**
 * Free a whole chain (every segment, following @c next) to the pool of
 * handle @p p, which must be the pool the segments came from (any handle of
 * it, in any process). NULL @p pkt is a no-op.
 *
 * Double frees: each segment's MPOPS_PKT_F_ALLOCATED flag is checked and
 * cleared with a plain load and store, not a locked read-modify-write (it
 * would cost a cross-core stall per packet). So a double free is caught,
 * -EINVAL and logged, whenever the second free starts after the first one
 * returned: in the same handle, another handle or another process. Two
 * frees of the same buffer that run at the same time (different threads
 * or processes) may both succeed; the buffer is then twice in the free
 * set. The extra copy is dropped and logged when it is allocated while the
 * buffer is allocated (mpops_pkt_alloc_bulk()), but if two handles
 * allocate the two copies at the same time, both get the buffer: concurrent
 * double frees are a bug this pool does not always catch. (DPDK's mempool
 * checks nothing on its fast path.)
 * @return 0, -EINVAL a segment that is not an allocated buffer of this
 *   pool (double free, foreign pointer, a @c next cycle: logged, nothing
 *   of the chain freed), or a NULL handle.
 */
MPOPS_API int mpops_pkt_free(struct mpops_pktpool *p, struct mpops_pkt *pkt);

/**
 * Free @p n chains (NULL entries skipped), as mpops_pkt_free() each but
 * with one cache operation for a run of up to half the cache (room made
 * once, then one store per one-segment packet).
 * @return 0 or the first error (the rest still freed), -EINVAL NULL
 *   handle or pkts.
 */
MPOPS_API int mpops_pkt_free_bulk(struct mpops_pktpool *p,
				  struct mpops_pkt **pkts, unsigned n);

/** Buffers available: in the shared ring plus this handle's cache. */
MPOPS_API unsigned mpops_pktpool_avail(const struct mpops_pktpool *p);

/** Total buffers of the pool. */
MPOPS_API unsigned mpops_pktpool_count(const struct mpops_pktpool *p);

/** Region base as seen by this handle's process (for the inline helpers). */
MPOPS_API void *mpops_pktpool_base(const struct mpops_pktpool *p);

/** Data of segment @p m, in a region mapped at @p base. */
static inline void *mpops_pkt_data(void *base, const struct mpops_pkt *m)
{
	return (char *)base + m->buf_off + m->data_off;
}

/** Next segment of @p m, or NULL. */
static inline struct mpops_pkt *mpops_pkt_next(void *base, const struct mpops_pkt *m)
{
	return (struct mpops_pkt *)mpops_ptr(base, m->next);
}

#ifdef __cplusplus
}
#endif
#endif /* MPOPS_PKT_H */
