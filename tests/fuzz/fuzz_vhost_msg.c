/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer harness: vhost-user messages into mpops-vhost's message
 * handler (vb_conn_handle() of drivers/virtio/backend/vhost_backend.c, the
 * real source), each sent on a socket the way a frontend sends it (with the
 * fds its request carries), then every ring the messages made ready served
 * a few times (vhost_ring.c).
 *
 * Input: byte 0 the backend's options (bits 0-1 mode: loopback, sink,
 * source; bit 2 kick-driven; bit 3 cross; bits 4-5 queue pairs - 1),
 * bytes 1-2 the length L of a guest memory image (little-endian, at most
 * 64 KiB), L bytes of it, then messages: a 12-byte header (request, flags,
 * size) and up to size bytes of payload each. A message cut short by the
 * end of the input is followed by the frontend hanging up.
 */
#include <stdint.h>
#include <string.h>

#include "vhost_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vb_opts o = { .socket_path = "fuzz", .pkt_size = 64, .quiet = true };
	static struct vf f;
	size_t img;

	if (size < 3)
		return 0;
	o.mode = (enum vb_mode)(data[0] & 3) % 3;
	o.kick_driven = data[0] & 4;
	o.cross = (data[0] & 8) && o.mode == VB_MODE_LOOPBACK;
	o.queue_pairs = 1 + ((data[0] >> 4) & 3);
	o.features = vf_features();
	o.protocol_features = 1ull << VHOST_USER_PROTOCOL_F_MQ |
			      1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK;
	img = (size_t)data[1] | (size_t)data[2] << 8;
	data += 3;
	size -= 3;
	if (img > size)
		img = size;
	vf_begin(&f, &o, data, img);
	data += img;
	size -= img;
	while (size >= sizeof(struct vhost_user_hdr)) {
		struct vhost_user_hdr h;
		size_t plen;

		memcpy(&h, data, sizeof(h));
		data += sizeof(h);
		size -= sizeof(h);
		plen = h.size < size ? h.size : size;
		if (vf_msg(&f, h.request, h.flags, h.size, data, plen) < 0)
			break;	/* the backend hung up */
		data += plen;
		size -= plen;
	}
	vf_rings(&f, 4);
	vf_end(&f);
	return 0;
}
