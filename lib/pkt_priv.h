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
#define PKTPOOL_VERSION 1
#define PKTPOOL_COUNT_MAX (1u << 24)

/*
 * Bounded ring of free buffer indices shared by every process. Taking and
 * giving back happen in bulk (a handle's cache refill or flush) under a
 * robust shared lock: a process killed in the middle leaves the ring
 * consistent, because the slots are copied first and head or tail moves
 * with one store at the end; the next locker takes the lock over. (A
 * lock-free two-phase ring, as DPDK's rte_ring, would wait forever for the
 * dead process's claim to be published.) Indices run freely and wrap at
 * 2^32; a slot is index & mask.
 */
struct pkt_ring_shared {
	struct shlock lock;
	_Atomic uint32_t head;	/* next entry to take */
	_Atomic uint32_t tail;	/* next slot to fill */
	uint32_t size;		/* slots, a power of two */
	uint32_t mask;		/* size - 1 */
	uint32_t capacity;	/* most entries held: size - 1 >= count */
	uint32_t pad[11];
	uint32_t slots[];
};
_Static_assert(sizeof(struct pkt_ring_shared) == 128, "pkt ring layout");
_Static_assert(offsetof(struct pkt_ring_shared, head) == 64, "pkt ring layout");

/*
 * One allocation holds the whole pool, in this order, each part aligned to
 * 64: this header, the ring and its slots, the metadata array (count x
 * struct mpops_pkt) and the buffers (count x buf_stride). Every offset is
 * from the region base.
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
	uint64_t total_size;	/* of the whole allocation */
	char name[MPOPS_NAME_MAX + 1];
	uint64_t pad[2];
};
_Static_assert(sizeof(struct pktpool_shared) == 128, "pktpool layout");
_Static_assert(offsetof(struct pktpool_shared, self_off) == 40, "pktpool layout");
_Static_assert(offsetof(struct pktpool_shared, name) == 80, "pktpool layout");

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
	mpops_off_t pool_off;
	uint32_t count;
	uint32_t cache_size;
	uint16_t headroom;
	uint32_t len;			/* cached indices */
	int empty_logged;		/* -ENOBUFS logged once per handle */
	uint32_t cache[];		/* cache_size buffer indices, a stack */
};

/* Hash of the sizes and offsets above, stored in every pool. */
uint64_t pkt_layout_hash(void);

#endif
