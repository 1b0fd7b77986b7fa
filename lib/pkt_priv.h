/* SPDX-License-Identifier: BSD-3-Clause */
/* The packet pool's shared layout and per-handle state. Never installed. */
#ifndef MPOPS_LIB_PKT_PRIV_H
#define MPOPS_LIB_PKT_PRIV_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <mpops/pkt.h>
#include <mpops/region.h>

#define PKTPOOL_MAGIC 0x4c4f4f50544b504dULL /* "MPKTPOOL" little-endian */
#define PKTPOOL_VERSION 1
#define PKTPOOL_COUNT_MAX (1u << 24)

/*
 * Bounded multi-producer/multi-consumer ring of buffer indices, as in
 * DPDK's rte_ring: each side has a head (claimed by compare-and-swap) and a
 * tail (published in claim order), on its own cache line. Indices run
 * freely and wrap at 2^32; a slot is index & mask.
 */
struct pkt_ring_shared {
	_Atomic uint32_t prod_head;
	_Atomic uint32_t prod_tail;
	uint32_t pad0[14];
	_Atomic uint32_t cons_head;
	_Atomic uint32_t cons_tail;
	uint32_t pad1[14];
	uint32_t size;		/* slots, a power of two */
	uint32_t mask;		/* size - 1 */
	uint32_t capacity;	/* most entries held: size - 1 >= count */
	uint32_t pad2[13];
	uint32_t slots[];
};
_Static_assert(sizeof(struct pkt_ring_shared) == 192, "pkt ring layout");
_Static_assert(offsetof(struct pkt_ring_shared, cons_head) == 64, "pkt ring layout");
_Static_assert(offsetof(struct pkt_ring_shared, size) == 128, "pkt ring layout");

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
