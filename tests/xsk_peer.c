/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The far end of the AF_XDP tests, written without mpops: libxdp's own
 * socket API to send on a chosen queue, and an AF_PACKET socket to count.
 *
 *   xsk-peer send IFACE QUEUE N [PPS]
 *                                   N stamped frames out of queue QUEUE,
 *                                   at most PPS a second (default 50000)
 *                                   (copy mode: the frame keeps the queue,
 *                                   so the veth peer receives it on the
 *                                   same queue in native mode); prints
 *                                   "sent N"
 *   xsk-peer count IFACE TOTAL SECS count mpops-fwd's stamped frames by
 *                                   the queue pair in their stamp, until
 *                                   TOTAL arrived or SECS passed (or
 *                                   SIGTERM); prints "ready", then
 *                                   "qp0=A qp1=B ... total=T"
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <xdp/xsk.h>

#define STAMP_MAGIC 0x7766706du	/* mpops-fwd's txonly stamp */
#define ETYPE 0x88b5

struct stamp {
	uint8_t dst[6], src[6];
	uint16_t ethertype;
	uint32_t magic;
	uint16_t qp;
	uint64_t seq;
} __attribute__((packed));

static volatile sig_atomic_t stop;

static void on_sig(int s)
{
	(void)s;
	stop = 1;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int do_send(const char *iface, unsigned queue, unsigned long n, unsigned long pps)
{
	const unsigned nframes = 4096, fsz = XSK_UMEM__DEFAULT_FRAME_SIZE;
	struct xsk_ring_prod fq, tx;
	struct xsk_ring_cons cq;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_socket_config cfg = {
		.rx_size = XSK_RING_CONS__DEFAULT_NUM_DESCS,
		.tx_size = XSK_RING_PROD__DEFAULT_NUM_DESCS,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.bind_flags = XDP_COPY,
	};
	unsigned long sent = 0, done = 0, next = 0;
	double deadline = now() + 20, t_next = 0;
	uint32_t idx, c;
	char *area;
	int rc;

	area = mmap(NULL, (size_t)nframes * fsz, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		return 1;
	if ((rc = xsk_umem__create(&umem, area, (uint64_t)nframes * fsz, &fq, &cq, NULL)) == 0) {
		/* A queue whose last socket just closed may be busy a moment. */
		for (int i = 0; i < 50; i++) {
			rc = xsk_socket__create(&xsk, iface, queue, umem, NULL, &tx, &cfg);
			if (rc != -EBUSY)
				break;
			usleep(20000);
		}
	}
	if (rc) {
		fprintf(stderr, "xsk-peer: cannot open an AF_XDP socket on %s queue %u: %s\n", iface,
			queue, strerror(-rc));
		return 1;
	}
	while (done < n) {
		unsigned want = 0;

		/* Paced, so that a receiver sharing the CPUs sees every frame:
		 * 64 at a time, at most @pps a second. */
		while (now() < t_next)
			;
		while (sent - done < nframes && sent < n && want < 64)
			want++, sent++;
		t_next = now() + want / (double)pps;
		if (want && xsk_ring_prod__reserve(&tx, want, &idx) == want) {
			for (unsigned i = 0; i < want; i++) {
				uint64_t addr = ((next + i) % nframes) * fsz;
				struct stamp *s = (struct stamp *)(area + addr);

				memset(s, 0, 64);
				memset(s->dst, 0xff, 6);
				s->src[0] = 0x02;
				s->ethertype = htons(ETYPE);
				s->magic = STAMP_MAGIC;
				s->qp = (uint16_t)queue;
				s->seq = next + i;
				xsk_ring_prod__tx_desc(&tx, idx + i)->addr = addr;
				xsk_ring_prod__tx_desc(&tx, idx + i)->len = 64;
			}
			xsk_ring_prod__submit(&tx, want);
			next += want;
		} else {
			sent -= want;
		}
		sendto(xsk_socket__fd(xsk), NULL, 0, MSG_DONTWAIT, NULL, 0);
		if ((c = xsk_ring_cons__peek(&cq, 4096, &idx)) > 0) {
			xsk_ring_cons__release(&cq, c);
			done += c;
		}
		if (now() > deadline) {
			fprintf(stderr, "xsk-peer: %lu of %lu frames sent after 20 s\n", done, n);
			return 1;
		}
	}
	printf("sent %lu\n", n);
	xsk_socket__delete(xsk);
	xsk_umem__delete(umem);
	munmap(area, (size_t)nframes * fsz);
	return 0;
}

static int do_count(const char *iface, unsigned long total, double secs)
{
	struct sockaddr_ll sa = { .sll_family = AF_PACKET, .sll_protocol = htons(ETYPE) };
	unsigned long qp[16] = { 0 }, all = 0;
	unsigned char buf[2048];
	double end = now() + secs;
	int fd;

	sa.sll_ifindex = (int)if_nametoindex(iface);
	fd = socket(AF_PACKET, SOCK_RAW, htons(ETYPE));
	if (fd >= 0)	/* room for every frame of a test's burst */
		setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &(int){ 64 << 20 }, sizeof(int));
	if (fd < 0 || !sa.sll_ifindex || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "xsk-peer: cannot count on %s: %s\n", iface, strerror(errno));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (!stop && all < total && now() < end) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		const struct stamp *s = (const void *)buf;
		ssize_t len;

		if (poll(&pf, 1, 50) <= 0)
			continue;
		len = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (len < (ssize_t)sizeof(*s) || s->magic != STAMP_MAGIC)
			continue;
		qp[s->qp & 15]++;
		all++;
	}
	for (int i = 0; i < 16; i++)
		if (qp[i])
			printf("qp%d=%lu ", i, qp[i]);
	printf("total=%lu\n", all);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGTERM, on_sig);
	signal(SIGINT, on_sig);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "send") == 0)
		return do_send(argv[2], (unsigned)atoi(argv[3]), strtoul(argv[4], NULL, 0),
			       argc == 6 ? strtoul(argv[5], NULL, 0) : 50000);
	if (argc == 5 && strcmp(argv[1], "count") == 0)
		return do_count(argv[2], strtoul(argv[3], NULL, 0), atof(argv[4]));
	fprintf(stderr, "usage: xsk-peer send IFACE QUEUE N [PPS] | count IFACE TOTAL SECS\n");
	return 2;
}
