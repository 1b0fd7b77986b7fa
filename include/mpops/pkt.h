/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file pkt.h
 * Packet buffers in shared memory, usable from every attached process.
 *
 * A pool is created inside a region by any writable process: fixed-size
 * buffers, each with a metadata struct (struct mpops_pkt) and headroom.
 * Free buffers sit in a shared ring of buffer indices; every process (in
 * practice every thread that does rx/tx) opens its own handle with a
 * cache, so the fast path is lock-free and touches the shared ring only
 * once per bulk refill or flush. That exchange runs under a robust shared
 * lock, so a process killed at any point (SIGKILL) cannot wedge the pool
 * for the others.
 *
 * Nothing a dead process held is lost: each handle's cache lives in
 * shared memory, and every allocated buffer records who holds it (in
 * mpops_pkt.flags): the process that allocated it, or a port's ring while
 * it is posted there (a port driver marks the buffers each burst hands
 * over or takes back). When the primary notices that a process is gone
 * (its exit callback) it gives back to the pool the buffers of its caches
 * and every buffer the process held that is on no ring. A process that
 * hands buffers to another one through its own queues says so
 * (mpops_pkt_handoff(), mpops_pkt_adopt()), or they go back to the pool
 * when it dies. mpops_pktpool_census() says where every buffer is.
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
	uint32_t flags;		/**< internal: MPOPS_PKT_F_ALLOCATED, and who holds
				     the buffer in the bits above it */
	uint64_t udata;		/**< free for applications */
	uint64_t buf_iova;	/**< device address of the buffer (set at create:
				     mpops_region_iova() of buf_off) */
};

/** mpops_pkt.flags: set while the buffer is allocated (internal; test
 * it with &, the bits above say who holds the buffer). */
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
	uint32_t max_handles;	/**< handles open at once, in every process
				     together (and those of processes gone,
				     until the primary notices); 0 = 64 */
	uint32_t data_align;	/**< alignment of the first buffer (a power of
				     two, 64..MPOPS_PKTPOOL_DATA_ALIGN_MAX;
				     0 = 64). With 4096 and a power-of-two
				     buf_size the buffers are a page-aligned
				     array of equal chunks, as an AF_XDP UMEM
				     needs (mpops_pktpool_layout()). */
};

/** Largest mpops_pktpool_opts.data_align. */
#define MPOPS_PKTPOOL_DATA_ALIGN_MAX (2u << 20)

/** Where a pool's buffers lie, for a driver that registers them with a device. */
struct mpops_pktpool_layout {
	size_t sz;		/**< sizeof(struct mpops_pktpool_layout) */
	mpops_off_t data_off;	/**< region offset of buffer 0 */
	mpops_off_t meta_off;	/**< region offset of buffer 0's mpops_pkt (the
				     others follow it, one struct each) */
	uint64_t data_len;	/**< bytes from buffer 0 to the end of the last */
	uint32_t stride;	/**< bytes from one buffer to the next */
	uint32_t count;		/**< buffers */
	uint16_t buf_size;	/**< bytes per buffer, headroom included */
	uint16_t headroom;	/**< default data offset */
	uint32_t data_align;	/**< alignment of buffer 0 */
};

/**
 * The layout of handle @p p's pool. Buffer i's bytes are at region offset
 * data_off + i * stride (its mpops_pkt.buf_off).
 * @return 0, -EINVAL NULL arguments or a bad sz.
 */
MPOPS_API int mpops_pktpool_layout(const struct mpops_pktpool *p,
				   struct mpops_pktpool_layout *l);

/**
 * The buffer whose bytes contain region offset @p off (any byte of it), in
 * handle @p p's pool; the reverse of buf_off. For drivers that get buffer
 * addresses back from a device: an offset outside the buffers, or in the
 * gap after a buffer's buf_size, gives NULL.
 */
MPOPS_API struct mpops_pkt *mpops_pktpool_buf_at(const struct mpops_pktpool *p, mpops_off_t off);

/** Largest per-handle cache, in buffers. */
#define MPOPS_PKTPOOL_CACHE_MAX 4096
/** Most handles a pool can have (mpops_pktpool_opts.max_handles). */
#define MPOPS_PKTPOOL_HANDLES_MAX 1024

/**
 * Create a pool in @p r, named @p name (published as a root under that
 * name; the memory object is tagged "pktpool.<name>"). @p opts may be NULL
 * for the defaults. Any writable attach, any thread.
 * @return 0 and the pool's offset in *out, or -EINVAL bad name or sizes
 *   (headroom >= buf_size, count > 2^24, cache_size > count or >
 *   MPOPS_PKTPOOL_CACHE_MAX, max_handles > MPOPS_PKTPOOL_HANDLES_MAX),
 *   -ENOMEM region too small, -EEXIST name taken, -ENOSPC no free root,
 *   -EROFS read-only attach.
 */
MPOPS_API int mpops_pktpool_create(struct mpops_region *r, const char *name,
				   const struct mpops_pktpool_opts *opts,
				   mpops_off_t *out);

/**
 * Open a handle to the pool at @p pool (found e.g. with mpops_root_get()).
 * One handle per thread that allocates or frees: a handle is not
 * thread-safe, the pool is (any number of handles in any processes, up
 * to the pool's max_handles).
 * @return 0 and *out, -EINVAL not a pool (bad offset or magic, corrupt
 *   header), -EPROTO pool made by another mpops version, -EROFS read-only
 *   attach, -ENOSPC every handle record taken (logged), -ENOMEM,
 *   -ENOTRECOVERABLE a process died inside the pool's lock and its state
 *   could not be repaired (logged).
 */
MPOPS_API int mpops_pktpool_open(struct mpops_region *r, mpops_off_t pool,
				 struct mpops_pktpool **out);

/**
 * Return the handle's cached buffers to the pool and free the handle.
 * Buffers still allocated through it stay valid and may be freed through
 * any other handle of the pool; they stay this process's (see
 * mpops_pkt_handoff()). NULL is a no-op.
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
 *   a fast-path condition), -EINVAL NULL handle or pkts,
 *   -ENOTRECOVERABLE a process died inside the pool's lock and its state
 *   could not be repaired (logged).
 */
MPOPS_API int mpops_pkt_alloc_bulk(struct mpops_pktpool *p,
				   struct mpops_pkt **pkts, unsigned n);

/**
 * mpops_pkt_alloc_bulk(), the buffers marked as held by @p mark instead of
 * this process: for a port driver, what a burst posts on a ring (a mark of
 * struct mpops_port_marks, port_driver.h), written by the same store that
 * marks a buffer allocated. 0: as mpops_pkt_alloc_bulk().
 * @return as mpops_pkt_alloc_bulk().
 */
MPOPS_API int mpops_pkt_alloc_bulk_mark(struct mpops_pktpool *p, struct mpops_pkt **pkts,
					unsigned n, uint32_t mark);

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
 *   of the chain freed), or a NULL handle. (A full cache whose entries the
 *   ring cannot take, corrupt state only, loses them: logged and counted,
 *   see mpops_pktpool_census().)
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

/**
 * Hand @p n buffers (chains: their first segments) to another process
 * through the application's own queue: from now on no process holds them,
 * so the death of this one does not give them back to the pool. The one
 * that takes them calls mpops_pkt_adopt(). (A port's rings need neither:
 * the port layer does it.) Any thread; one store per buffer.
 * @return 0, -EINVAL a NULL array or a buffer that is not allocated.
 */
MPOPS_API int mpops_pkt_handoff(struct mpops_pkt **pkts, unsigned n);

/**
 * Take @p n handed-off buffers as this process's (the process of handle
 * @p p): they go back to the pool if it dies holding them.
 * @return 0, -EINVAL a NULL handle or array or a buffer that is not
 *   allocated.
 */
MPOPS_API int mpops_pkt_adopt(struct mpops_pktpool *p, struct mpops_pkt **pkts, unsigned n);

/** Buffers available: in the shared ring plus this handle's cache. */
MPOPS_API unsigned mpops_pktpool_avail(const struct mpops_pktpool *p);

/** Total buffers of the pool. */
MPOPS_API unsigned mpops_pktpool_count(const struct mpops_pktpool *p);

/** Region base as seen by this handle's process (for the inline helpers). */
MPOPS_API void *mpops_pktpool_base(const struct mpops_pktpool *p);

/** Queue pairs mpops_pktpool_census() tells apart (MPOPS_PORT_MAX_QP). */
#define MPOPS_PKTPOOL_CENSUS_QP 16
/** Processes it lists (MPOPS_PROC_MAX). */
#define MPOPS_PKTPOOL_CENSUS_PROCS 64

/**
 * Where every buffer of a pool is. A snapshot taken without locks: exact
 * when nothing moves, off by what is in motion otherwise (unaccounted).
 */
struct mpops_pktpool_census {
	size_t sz;		/**< sizeof(struct mpops_pktpool_census) */
	uint32_t total;		/**< buffers that can be used */
	uint32_t free;		/**< in the shared ring or a cache */
	uint32_t ring;		/**< ... of which in the shared ring */
	uint32_t cached;	/**< ... of which in the handles' caches */
	uint32_t held;		/**< allocated, held by a process (to free or send) */
	uint32_t on_rings;	/**< allocated, posted on a port's rings */
	/** ... by queue pair, [qp][0] rx, [qp][1] tx */
	uint32_t on_queue[MPOPS_PKTPOOL_CENSUS_QP][2];
	uint32_t on_rings_anyq;	/**< ... posted by the port's start (queue not recorded) */
	uint32_t handed_off;	/**< allocated, handed off, not adopted yet */
	uint32_t gone;		/**< held by processes that are gone: the primary
				     gives them back when it notices */
	uint32_t unaccounted;	/**< total minus all of the above */
	uint32_t twice;		/**< entries of the free ring and caches that name a
				     buffer found there already (copies a concurrent
				     double free left; dropped when allocated) */
	uint64_t reclaimed;	/**< given back from processes that were gone */
	uint64_t recovered;	/**< left on rings by bursts whose process died
				     inside, given back when the port stopped */
	uint64_t lost;		/**< given up for good: the pool's state was found
				     corrupt (each case logged) */
	uint32_t nprocs;	/**< processes with handle records (procs[]) */
	struct mpops_pktpool_census_proc {
		int32_t pid;
		int alive;		/**< 0: gone, not given back yet */
		uint64_t start_time;
		uint32_t handles;	/**< open */
		uint32_t cached;	/**< in its handles' caches */
		uint32_t held;		/**< allocated, held by it */
	} procs[MPOPS_PKTPOOL_CENSUS_PROCS];
};

/**
 * Count where the buffers of the pool at @p pool are (any attach, also
 * read-only: it only reads).
 * @return 0, -EINVAL not a pool (logged as at open) or bad arguments,
 *   -EPROTO another mpops version.
 */
MPOPS_API int mpops_pktpool_census(struct mpops_region *r, mpops_off_t pool,
				   struct mpops_pktpool_census *c);

/**
 * Give back now what processes that are gone held in the pool of handle
 * @p p: their caches, and the buffers they allocated and had not handed to
 * a port's ring or off (primary only; the library does this by itself
 * when the primary notices a process left or died).
 * @return buffers given back, -EPERM not the primary, -EINVAL,
 *   -ENOTRECOVERABLE (as at open).
 */
MPOPS_API int mpops_pktpool_reclaim(struct mpops_pktpool *p);

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
