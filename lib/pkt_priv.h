/* SPDX-License-Identifier: BSD-3-Clause */
/* The packet pool's shared layout and per-handle state. Never installed. */
#ifndef MPOPS_LIB_PKT_PRIV_H
#define MPOPS_LIB_PKT_PRIV_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <mpops/pkt.h>
#include <mpops/region.h>

#include "priv.h"

#define PKTPOOL_MAGIC 0x4c4f4f50544b504dULL /* "MPKTPOOL" little-endian */
#define PKTPOOL_VERSION 2
#define PKTPOOL_COUNT_MAX (1u << 24)
#define PKTPOOL_HANDLES_DEF 64u
#define PKTPOOL_DATA_ALIGN_MAX MPOPS_PKTPOOL_DATA_ALIGN_MAX
#define PKTPOOL_HANDLES_MAX 1024u

/*
 * Who holds an allocated buffer: mpops_pkt.flags above its ALLOCATED bit.
 * The owner field (bits 8..31) is
 *  - 0: nobody (handed off with mpops_pkt_handoff(), not adopted yet);
 *  - 1..max_handles: a process, by one of its handle records (index + 1);
 *  - OWNER_RING | port | queue pair | direction: a port's device ring (set
 *    by a port driver's bursts, port_driver.h; the port by a number
 *    of its own, 1..2047); with OWNER_RING_KEPT, one the device keeps
 *    across a stop (mpops_port_bufs_kept()), which recovery leaves;
 *  - OWNER_UNUSABLE: never handed out (spans two hugepages, see create).
 * Written with the plain stores that set and clear ALLOCATED: no extra
 * instruction on the pool's fast path.
 */
#define OWNER_SHIFT 8
#define OWNER_RING (1u << 23)
#define OWNER_RING_TX (1u << 4)
#define OWNER_RING_ANYQ (1u << 5)	/* posted outside a burst (port start) */
#define OWNER_RING_KEPT (1u << 17)	/* left with the device across a stop */
#define OWNER_PORT_SHIFT 6
#define OWNER_PORT_MAX 0x7ffu
#define OWNER_UNUSABLE 0x7fffffu

static inline uint32_t owner_of(uint32_t flags)
{
	return flags >> OWNER_SHIFT;
}

static inline uint32_t flags_owned(uint32_t owner)
{
	return MPOPS_PKT_F_ALLOCATED | owner << OWNER_SHIFT;
}

/* Flags of a buffer on queue pair @qp's rx (@tx 0) or tx ring of port @port. */
static inline uint32_t flags_ring(uint32_t port, uint16_t qp, int tx)
{
	return flags_owned(OWNER_RING | (port & OWNER_PORT_MAX) << OWNER_PORT_SHIFT |
			   (qp & 15u) | (tx ? OWNER_RING_TX : 0));
}

static inline uint32_t owner_port(uint32_t owner)
{
	return (owner >> OWNER_PORT_SHIFT) & OWNER_PORT_MAX;
}

/* Journal of the free ring: which exchange is under way. */
enum { J_NONE = 0, J_FLUSH = 1, J_REFILL = 2 };

/*
 * Bounded ring of free buffer indices shared by every process. Taking and
 * giving back happen in bulk (a handle's cache refill or flush) under a
 * robust shared lock. An exchange changes two things, the ring's head or
 * tail and the handle's cache length (both in shared memory), so it writes
 * a journal first (what, whose cache, the length and the ring index
 * before): when a process dies inside, the next locker sees from the ring
 * index whether the exchange was published and sets the cache length to
 * match. (A lock-free two-phase ring, as DPDK's rte_ring, would wait
 * forever for the dead process's claim to be published.) Indices run
 * freely and wrap at 2^32; a slot is index & mask.
 */
struct pkt_ring_shared {
	struct shlock lock;
	_Atomic uint32_t head;	/* next entry to take */
	_Atomic uint32_t tail;	/* next slot to fill */
	uint32_t size;		/* slots, a power of two */
	uint32_t mask;		/* size - 1 */
	uint32_t capacity;	/* most entries held: size - 1 >= count */
	uint32_t j_op;		/* J_*: the exchange under way, 0 none */
	uint32_t j_handle;	/* ... with this handle record's cache */
	uint32_t j_n;		/* ... of this many entries */
	uint32_t j_len;		/* its cache length before */
	uint32_t j_pos;		/* head (refill) or tail (flush) before */
	uint32_t pad[6];
	uint32_t slots[];
};
_Static_assert(sizeof(struct pkt_ring_shared) == 128, "pkt ring layout");
_Static_assert(offsetof(struct pkt_ring_shared, head) == 64, "pkt ring layout");

/* Handle record states; the pid field says whether it is taken. */
enum { HANDLE_FREE = 0, HANDLE_OPEN = 1, HANDLE_CLOSED = 2 };

/*
 * One handle's cache, in shared memory so that the primary can give a dead
 * process's cached buffers back. Owned by the process whose pid it holds:
 * only that process writes len and cache[] while it lives. The record's
 * index + 1 is also the owner of every buffer the process allocates (see
 * above): a closed handle's record stays with its process (reused by its
 * next open) until the primary notices the process is gone and gives back
 * what it still held.
 */
struct pkt_handle_shared {
	_Atomic int32_t pid;	/* 0 = free; taken with a compare-and-swap */
	uint32_t state;		/* HANDLE_* */
	uint64_t start_time;	/* of pid, to tell a reused pid */
	uint32_t len;		/* entries in cache[] */
	uint32_t pad[11];
	uint32_t cache[];	/* cache_size buffer indices, a stack */
};
_Static_assert(sizeof(struct pkt_handle_shared) == 64, "pkt handle layout");

/*
 * One allocation holds the whole pool, in this order, each part aligned to
 * 64: this header, the ring and its slots, the handle records, the
 * metadata array (count x struct mpops_pkt) and the buffers (count x
 * buf_stride). Every offset is from the region base.
 */
struct pktpool_shared {
	uint64_t magic;		/* PKTPOOL_MAGIC, written last */
	uint32_t version;	/* PKTPOOL_VERSION */
	uint32_t hdr_size;	/* sizeof(struct pktpool_shared) */
	uint64_t layout_hash;	/* pkt_layout_hash() of the creator */
	uint32_t count;
	uint32_t cache_size;	/* per handle */
	uint16_t buf_size;	/* headroom included */
	uint16_t headroom;
	uint32_t buf_stride;	/* buf_size rounded up to 64 */
	mpops_off_t self_off;	/* this header, checked at open */
	mpops_off_t ring_off;
	mpops_off_t meta_off;
	mpops_off_t data_off;
	uint64_t total_size;	/* of the host part's allocation (the buffers are another, data_off) */
	char name[MPOPS_NAME_MAX + 1];
	mpops_off_t handles_off;
	uint32_t max_handles;
	uint32_t handle_stride;	/* bytes per record, cache included */
	uint32_t usable;	/* buffers a device can reach (the rest never leave) */
	uint32_t data_align;	/* of the first buffer, in every mapping */
	/* Counters, written under the ring's lock. */
	uint64_t reclaimed;	/* given back from processes that are gone */
	uint64_t recovered;	/* left on a port's rings by dead bursts, given back at stop */
	uint64_t lost;		/* given up for good (see mpops_pktpool_census) */
	uint64_t reclaims;	/* processes whose buffers were given back */
	uint64_t pad[11];
};
_Static_assert(sizeof(struct pktpool_shared) == 256, "pktpool layout");
_Static_assert(offsetof(struct pktpool_shared, self_off) == 40, "pktpool layout");
_Static_assert(offsetof(struct pktpool_shared, name) == 80, "pktpool layout");
_Static_assert(offsetof(struct pktpool_shared, reclaimed) == 136, "pktpool layout");

_Static_assert(sizeof(struct mpops_pkt) == 64, "mpops_pkt layout");
_Static_assert(offsetof(struct mpops_pkt, pkt_len) == 24, "mpops_pkt layout");
_Static_assert(offsetof(struct mpops_pkt, index) == 40, "mpops_pkt layout");
_Static_assert(offsetof(struct mpops_pkt, flags) == 44, "mpops_pkt layout");
_Static_assert(offsetof(struct mpops_pkt, udata) == 48, "mpops_pkt layout");

/* The per-handle state: process-local, never in shared memory. */
struct mpops_pktpool {
	struct mpops_region *r;
	char *base;			/* region base in this process */
	struct pktpool_shared *sh;
	struct pkt_ring_shared *ring;
	struct mpops_pkt *meta;		/* metadata array in this process */
	struct pkt_handle_shared *hs;	/* this handle's record (shared) */
	uint32_t *cache;		/* hs->cache */
	mpops_off_t pool_off;
	uint32_t count;
	uint32_t cache_size;
	uint16_t headroom;
	uint32_t index;			/* of hs */
	uint32_t own;			/* flags of a buffer this process holds */
	uint32_t cur;			/* flags a new buffer gets: own, or a
					   ring's while the port layer runs a
					   burst through this handle (port.c) */
	int empty_logged;		/* -ENOBUFS logged once per handle */
};

/*
 * Is region offset @off, inside the object at @obj, a part of a pool that
 * holds no addresses by construction: its free ring and handle records
 * (buffer indices, pids: two indices side by side can look like an address),
 * and the packet bytes (anything a device or peer sent)? For the audit.
 */
int pktpool_holds_no_addresses(struct mpops_region *r, mpops_off_t obj, mpops_off_t off);

/* Hash of the sizes and offsets above, stored in every pool. */
uint64_t pkt_layout_hash(void);

/* The parts of a pool, at this process's addresses. */
static inline struct pkt_ring_shared *pool_ring(struct pktpool_shared *sh)
{
	return (struct pkt_ring_shared *)((char *)sh - sh->self_off + sh->ring_off);
}

static inline struct mpops_pkt *pool_meta(struct pktpool_shared *sh)
{
	return (struct mpops_pkt *)((char *)sh - sh->self_off + sh->meta_off);
}

static inline struct pkt_handle_shared *pool_handle(struct pktpool_shared *sh, uint32_t i)
{
	return (struct pkt_handle_shared *)((char *)sh - sh->self_off + sh->handles_off +
					    (uint64_t)i * sh->handle_stride);
}

/* pkt_census.c: give back what gone processes held in the pool at @sh
 * (primary). @return buffers given back, or -ENOTRECOVERABLE. */
int pool_reclaim(struct pktpool_shared *sh);

/* pkt.c: lock the free ring (repairing a dead holder's exchange). */
int pool_lock(struct pktpool_shared *sh);
/* pkt.c: the header checks of open: NULL if sound, else what is wrong. */
const char *pool_header_bad(struct mpops_region *r, mpops_off_t pool,
			    const struct pktpool_shared *sh);
/* pkt.c: check magic, version and header of the pool at @pool (logged).
 * @return its header, or NULL and *rc. */
struct pktpool_shared *pool_header(struct mpops_region *r, mpops_off_t pool, int *rc);

/* The port layer: what a burst through @p tags, and what @p's process holds. */
static inline uint32_t *pktpool_cur_ref(struct mpops_pktpool *p)
{
	return &p->cur;
}

static inline uint32_t pktpool_own(const struct mpops_pktpool *p)
{
	return p->own;
}

/* Flags of a buffer on a ring of port @port whose queue is not known
 * (what a port's start posts). */
static inline uint32_t pktpool_ring_anyq(uint32_t port)
{
	return flags_owned(OWNER_RING | (port & OWNER_PORT_MAX) << OWNER_PORT_SHIFT |
			   OWNER_RING_ANYQ);
}

/* Flags of a buffer on queue pair @qp's rx or tx ring of port @port. */
static inline uint32_t pktpool_ring(uint32_t port, uint16_t qp, int tx)
{
	return flags_ring(port, qp, tx);
}

/* ... that the device keeps across a stop. */
static inline uint32_t pktpool_ring_kept(uint32_t port, uint16_t qp, int tx)
{
	return flags_ring(port, qp, tx) | OWNER_RING_KEPT << OWNER_SHIFT;
}

/*
 * Give back the buffers marked as on the rings of port number @port and
 * held by nobody (a burst whose process died inside left them): of every
 * queue (@qp < 0; the primary, after the driver took every ring back at
 * stop), or of queue pair @qp's rx (@tx 0) or tx ring only, except the
 * @nkeep packets in @keep and their segments (what the device still holds;
 * the queue's new owner after a takeover). @return how many, -ENOMEM, or
 * -ENOTRECOVERABLE.
 */
int pktpool_recover_rings(struct mpops_pktpool *p, uint32_t port, int qp, int tx,
			  struct mpops_pkt *const *keep, unsigned nkeep);

/* mpops_pktpool_census() counting on_queue[] for port number @port only
 * (0: every port's rings together). */
int pktpool_census(struct mpops_region *r, mpops_off_t pool, uint32_t port,
		   struct mpops_pktpool_census *c);

/*
 * Primary: give back what processes that are gone held in every pool of
 * the region (their caches, what they allocated and did not hand to a
 * ring). Called when the primary notices a death or an exit (proc.c).
 */
void pktpool_reclaim_gone(struct mpops_region *r);

#endif
