/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer harness: mpops-vhost's ring walk (drivers/virtio/backend/
 * vhost_ring.c, the real source) over rings whose every byte the input
 * writes, as a frontend that may write anything into its memory can. The
 * device is set up with well-formed vhost-user messages through the real
 * handler (one queue pair, one memory region of 64 KiB at gpa 0), then
 * each ring is served a number of passes.
 *
 * Input: byte 0 options (bits 0-1 mode: loopback, sink, source; bit 2
 * MRG_RXBUF; bit 3 EVENT_IDX; bit 4 IN_ORDER; bit 5 VERSION_1; bit 6
 * kick-driven), byte 1 the ring size (2 << (b % 8)), bytes 2-5 the vring
 * bases of queue 0 and 1 (little-endian 16 bits each), byte 6 the passes
 * (1 + b % 16), then the guest memory image (the rest of the 64 KiB is
 * zero): ring q's descriptor table at q * 0x2000, its avail ring 0x1000
 * after it and its used ring 0x1400 after it; descriptor addresses are
 * offsets into the image (gpa). VF_DEBUG=1 prints what moved (to check a
 * seed: fuzz-vhost-ring FILE).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "vhost_fuzz.h"

static void msg_u64(struct vf *f, uint32_t req, uint64_t v)
{
	vf_msg(f, req, VHOST_USER_VERSION, sizeof(v), &v, sizeof(v));
}

static void msg_state(struct vf *f, uint32_t req, uint32_t index, uint32_t num)
{
	struct vhost_user_vring_state s = { .index = index, .num = num };

	vf_msg(f, req, VHOST_USER_VERSION, sizeof(s), &s, sizeof(s));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vb_opts o = { .socket_path = "fuzz", .pkt_size = 64, .quiet = true,
			     .queue_pairs = 1 };
	struct vhost_user_memory mem = { .nregions = 1 };
	uint64_t want = 1ull << VHOST_USER_F_PROTOCOL_FEATURES;
	uint16_t base[2];
	unsigned num, passes;
	static struct vf f;

	if (size < 7)
		return 0;
	o.mode = (enum vb_mode)(data[0] & 3) % 3;
	o.kick_driven = data[0] & 0x40;
	o.features = vf_features() & ~(1ull << VIRTIO_NET_F_MQ);
	o.protocol_features = 1ull << VHOST_USER_PROTOCOL_F_MQ |
			      1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK;
	if (data[0] & 0x04)
		want |= 1ull << VIRTIO_NET_F_MRG_RXBUF;
	if (data[0] & 0x08)
		want |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	if (data[0] & 0x10)
		want |= 1ull << VIRTIO_F_IN_ORDER;
	if (data[0] & 0x20)
		want |= 1ull << VIRTIO_F_VERSION_1;
	num = 2u << (data[1] % 8);
	memcpy(base, data + 2, sizeof(base));
	passes = 1 + data[6] % 16;
	vf_begin(&f, &o, data + 7, size - 7);

	vf_msg(&f, VHOST_USER_SET_OWNER, VHOST_USER_VERSION, 0, NULL, 0);
	msg_u64(&f, VHOST_USER_SET_FEATURES, want);
	msg_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, o.protocol_features);
	mem.regions[0] = (struct vhost_user_mem_region){
		.guest_phys_addr = 0, .memory_size = VF_MEM_SIZE, .userspace_addr = VF_UVA,
	};
	vf_msg(&f, VHOST_USER_SET_MEM_TABLE, VHOST_USER_VERSION, 8 + sizeof(mem.regions[0]), &mem,
	       8 + sizeof(mem.regions[0]));
	for (uint32_t q = 0; q < 2; q++) {
		struct vhost_user_vring_addr a = {
			.index = q,
			.desc_user_addr = VF_UVA + q * 0x2000,
			.avail_user_addr = VF_UVA + q * 0x2000 + 0x1000,
			.used_user_addr = VF_UVA + q * 0x2000 + 0x1400,
		};

		msg_state(&f, VHOST_USER_SET_VRING_NUM, q, num);
		vf_msg(&f, VHOST_USER_SET_VRING_ADDR, VHOST_USER_VERSION, sizeof(a), &a, sizeof(a));
		msg_state(&f, VHOST_USER_SET_VRING_BASE, q, base[q]);
		msg_u64(&f, VHOST_USER_SET_VRING_KICK, q);
		msg_u64(&f, VHOST_USER_SET_VRING_CALL, q);
		msg_state(&f, VHOST_USER_SET_VRING_ENABLE, q, 1);
	}
	vf_rings(&f, passes);
	if (getenv("VF_DEBUG"))
		fprintf(stderr, "received %llu sent %llu errors %llu drops %llu\n",
			(unsigned long long)f.dev.st.received_packets,
			(unsigned long long)f.dev.st.sent_packets,
			(unsigned long long)f.dev.st.errors, (unsigned long long)f.dev.st.drops);
	vf_end(&f);
	return 0;
}
