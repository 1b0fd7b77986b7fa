/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the mpops-vhost fuzzers share: a backend (the real
 * vhost_backend.c and vhost_ring.c, no main.c) whose connection is one end
 * of a socket pair, and the frontend's end, from which messages go out
 * with the fds their request carries (a memfd for each region of
 * SET_MEM_TABLE, an eventfd for SET_VRING_KICK/CALL/ERR), as a real
 * frontend sends them. Guest memory is one memfd of VF_MEM_SIZE bytes.
 */
#ifndef MPOPS_FUZZ_VHOST_FUZZ_H
#define MPOPS_FUZZ_VHOST_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "backend/vhost_backend.h"

#define VF_MEM_SIZE (64u * 1024)
/* The frontend's address of guest memory (its gpa is 0). */
#define VF_UVA 0x100000ull

struct vf {
	struct vb_opts opts;
	struct vb_dev dev;
	int peer;		/* the frontend's end */
};

/* Start a backend with @o, guest memory holding @image (the rest zero). */
void vf_begin(struct vf *f, const struct vb_opts *o, const uint8_t *image, size_t len);
/*
 * Send one message (@plen bytes of payload follow the header; fewer than
 * hdr.size: the frontend then hangs up, as a short message does), let the
 * backend handle it and read its reply. @return what vb_conn_handle() did.
 */
int vf_msg(struct vf *f, uint32_t request, uint32_t flags, uint32_t size, const void *payload,
	   size_t plen);
/* Serve every ready ring @passes times, polled and kick-driven. */
void vf_rings(struct vf *f, unsigned passes);
/* Hang up and free everything. */
void vf_end(struct vf *f);

/* The default features of mpops-vhost (its main.c). */
uint64_t vf_features(void);

#endif
