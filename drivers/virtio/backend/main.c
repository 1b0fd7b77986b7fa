/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-vhost: a vhost-user backend (the device side of virtio-net) for
 * testing frontends. Command line, main loop and output.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "vhost_backend.h"

/* Ring passes between two looks at the socket while the rings are busy. */
#define VB_EVENT_EVERY 64u
/* Longest sleep: how late a tick, the duration or a reconnection can be. */
#define VB_SLEEP_MS 100

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mpops-vhost --socket PATH [options]\n"
		"  A vhost-user backend: the device side of a virtio-net device, on split\n"
		"  virtqueues. Queue 2k is the frontend's rx queue k, 2k+1 its tx queue k.\n"
		"\n"
		"  --socket PATH       the vhost-user Unix socket (required)\n"
		"  --client            connect to a frontend listening at PATH (retry until it\n"
		"                      is there, reconnect when it goes); default: listen at\n"
		"                      PATH and serve one frontend at a time\n"
		"  --mode MODE         loopback: send every packet of tx queue k back on rx\n"
		"                      queue k (default); sink: count and drop; source: fill\n"
		"                      every rx queue with generated frames\n"
		"  --cross             loopback: send tx queue k's packets back on rx queue\n"
		"                      (k + 1) %% N instead, as a switch returns a packet on\n"
		"                      whichever queue its thread polls (N: --queues; give\n"
		"                      the frontend as many queue pairs)\n"
		"  --size BYTES        source mode: Ethernet frame size, 14..65000 (default 64)\n"
		"  --queues N          queue pairs offered, 1..%u (default 1)\n"
		"  --kick-driven       sleep in epoll on the kick eventfds and serve a queue\n"
		"                      only when kicked (default: busy polling, kicks off)\n"
		"  --duration SECONDS  exit after this long (default: at SIGINT/SIGTERM)\n"
		"  --cpu N             pin the process to CPU N\n"
		"  --quiet             no per-second lines\n"
		"  --no-mrg-rxbuf      do not offer VIRTIO_NET_F_MRG_RXBUF\n"
		"  --no-event-idx      do not offer VIRTIO_RING_F_EVENT_IDX\n"
		"  --no-in-order       do not offer VIRTIO_F_IN_ORDER\n"
		"  --no-version-1      do not offer VIRTIO_F_VERSION_1 (legacy 10-byte header)\n"
		"  --no-protocol-features  do not offer VHOST_USER_F_PROTOCOL_FEATURES\n"
		"                      (so no MQ, no REPLY_ACK, rings enabled at start)\n"
		"  --help              this text\n"
		"\n"
		"  Prints one line a second while traffic flows, and at exit one JSON object:\n"
		"  received_* counts the frontend's tx, sent_* what went into its rx queues.\n",
		VB_MAX_QUEUE_PAIRS);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t kicks_total(const struct vb_stats *st)
{
	uint64_t k = 0;

	for (unsigned q = 0; q < VB_MAX_QUEUES; q++)
		k += st->kicks[q];
	return k;
}

static void print_second(const struct vb_stats *st, const struct vb_stats *prev, double dt)
{
	printf("mpops-vhost: received %" PRIu64 " pkts %.3f Mpps, sent %" PRIu64
	       " pkts %.3f Mpps, drops %" PRIu64 ", kicks %" PRIu64 ", calls %" PRIu64
	       ", errors %" PRIu64 "\n",
	       st->received_packets,
	       (double)(st->received_packets - prev->received_packets) / dt / 1e6,
	       st->sent_packets, (double)(st->sent_packets - prev->sent_packets) / dt / 1e6,
	       st->drops, kicks_total(st), st->calls, st->errors);
	fflush(stdout);
}

static void print_json(const struct vb_dev *dev, double secs)
{
	const struct vb_stats *st = &dev->st;

	printf("{\"received_packets\": %" PRIu64 ", \"received_bytes\": %" PRIu64
	       ", \"sent_packets\": %" PRIu64 ", \"sent_bytes\": %" PRIu64
	       ", \"drops\": %" PRIu64 ", \"errors\": %" PRIu64 ", \"kicks\": [",
	       st->received_packets, st->received_bytes, st->sent_packets, st->sent_bytes,
	       st->drops, st->errors);
	for (unsigned q = 0; q < 2 * dev->opts->queue_pairs; q++)
		printf("%s%" PRIu64, q ? ", " : "", st->kicks[q]);
	printf("], \"calls\": %" PRIu64 ", \"connections\": %" PRIu64 ", \"seconds\": %.3f}\n",
	       st->calls, st->connections, secs);
	fflush(stdout);
}

/* A kick fd is readable: count what it says, and serve the queue if asked. */
static void on_kick(struct vb_dev *dev, unsigned q)
{
	struct vb_vq *vq = &dev->vq[q];
	uint64_t v;
	ssize_t n;

	if (q >= 2 * dev->opts->queue_pairs || vq->kickfd < 0)
		return;
	/* Readable per epoll, and only we read it: this does not block. */
	n = read(vq->kickfd, &v, sizeof(v));
	if (n == (ssize_t)sizeof(v))
		dev->st.kicks[q] += v;
	if (dev->opts->kick_driven)
		vb_vq_service_kicked(dev, q);
}

static void on_socket_event(struct vb_dev *dev, uint32_t tag, uint32_t events)
{
	int rc;

	if (tag == VB_EV_LISTEN && dev->conn_fd < 0) {
		rc = vb_accept(dev);
		if (rc < 0)
			vb_log("accept: %s", strerror(-rc));
	} else if (tag == VB_EV_CONN && dev->conn_fd >= 0) {
		rc = vb_conn_handle(dev);
		if (rc < 0)
			vb_disconnect(dev, rc == -ECONNRESET ? "closed by the frontend" :
				      strerror(-rc));
		else if (events & EPOLLERR)
			vb_disconnect(dev, "socket error");
	}
}

static int run(struct vb_dev *dev)
{
	const struct vb_opts *o = dev->opts;
	unsigned nq = 2 * o->queue_pairs, pass = 0;
	double start = now_s(), next_tick = start + 1, last_tick = start, next_connect = 0;
	struct vb_stats prev = dev->st;
	bool waiting_logged = false;

	while (!stop_signal) {
		struct epoll_event ev[32];
		bool polling = false;
		unsigned work = 0;
		int n, timeout;
		double now;

		/* The rings: all of them when polling, the kicked ones otherwise. */
		for (unsigned q = 0; dev->conn_fd >= 0 && q < nq; q++) {
			struct vb_vq *vq = &dev->vq[q];

			if (!vq->ready)
				continue;
			if (!o->kick_driven || vq->kickfd < 0) {
				polling = true;
				work += vb_vq_service(dev, q);
			} else if (vq->pending) {
				vb_vq_service_kicked(dev, q);
				work++;
			}
			polling |= vq->pending;
		}
		if (work && ++pass % VB_EVENT_EVERY)
			continue;

		now = now_s();
		if (o->client && dev->conn_fd < 0 && now >= next_connect) {
			int rc = vb_connect(dev);

			if (rc < 0) {
				vb_log("connect to %s: %s", o->socket_path, strerror(-rc));
				return rc;
			}
			if (rc == 0 && !waiting_logged)
				vb_log("waiting for a frontend to listen at %s", o->socket_path);
			waiting_logged = rc == 0;
			next_connect = now + VB_SLEEP_MS / 1000.0;
		}
		timeout = polling ? 0 : VB_SLEEP_MS;
		if (!polling && next_tick - now < timeout / 1000.0)
			timeout = next_tick > now ? (int)((next_tick - now) * 1000) + 1 : 0;
		n = epoll_wait(dev->epfd, ev, 32, timeout);
		if (n < 0 && errno != EINTR) {
			vb_log("epoll_wait: %s", strerror(errno));
			return -errno;
		}
		/*
		 * Kicks first: a message handled below may close or replace a
		 * kick fd that an event of this batch still names.
		 */
		for (int i = 0; i < n; i++)
			if (ev[i].data.u32 < VB_MAX_QUEUES)
				on_kick(dev, ev[i].data.u32);
		for (int i = 0; i < n; i++)
			if (ev[i].data.u32 >= VB_MAX_QUEUES) {
				on_socket_event(dev, ev[i].data.u32, ev[i].events);
				break;	/* one message per look: the others stay readable */
			}

		now = now_s();
		if (now >= next_tick) {
			bool moved = dev->st.received_packets != prev.received_packets ||
				dev->st.sent_packets != prev.sent_packets ||
				dev->st.errors != prev.errors || dev->st.drops != prev.drops ||
				kicks_total(&dev->st) != kicks_total(&prev);

			if (moved && !o->quiet)
				print_second(&dev->st, &prev, now - last_tick);
			prev = dev->st;
			last_tick = now;
			next_tick = now + 1;
		}
		if (o->duration > 0 && now - start >= o->duration)
			break;
	}
	return 0;
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_NO_MRG = 256, O_NO_EVIDX, O_NO_INORDER, O_NO_V1, O_NO_PROTO, O_CROSS };
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "client", no_argument, NULL, 'c' },
		{ "mode", required_argument, NULL, 'm' },
		{ "cross", no_argument, NULL, O_CROSS },
		{ "size", required_argument, NULL, 'z' },
		{ "queues", required_argument, NULL, 'q' },
		{ "kick-driven", no_argument, NULL, 'k' },
		{ "duration", required_argument, NULL, 'd' },
		{ "cpu", required_argument, NULL, 'C' },
		{ "quiet", no_argument, NULL, 'Q' },
		{ "no-mrg-rxbuf", no_argument, NULL, O_NO_MRG },
		{ "no-event-idx", no_argument, NULL, O_NO_EVIDX },
		{ "no-in-order", no_argument, NULL, O_NO_INORDER },
		{ "no-version-1", no_argument, NULL, O_NO_V1 },
		{ "no-protocol-features", no_argument, NULL, O_NO_PROTO },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct vb_opts o = {
		.mode = VB_MODE_LOOPBACK,
		.queue_pairs = 1,
		.pkt_size = 64,
		.features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MRG_RXBUF |
			1ull << VIRTIO_RING_F_EVENT_IDX | 1ull << VIRTIO_F_IN_ORDER |
			1ull << VHOST_USER_F_PROTOCOL_FEATURES,
		.protocol_features = 1ull << VHOST_USER_PROTOCOL_F_MQ |
			1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK,
	};
	struct sigaction sa = { .sa_handler = on_signal };
	static struct vb_dev dev;
	unsigned cpu = 0;
	bool pin = false;
	double start;
	char *end;
	int c, rc;

	while ((c = getopt_long(argc, argv, "s:cm:z:q:kd:C:Qh", lo, NULL)) != -1) {
		switch (c) {
		case 's': o.socket_path = optarg; break;
		case 'c': o.client = true; break;
		case 'm':
			if (!strcmp(optarg, "loopback"))
				o.mode = VB_MODE_LOOPBACK;
			else if (!strcmp(optarg, "sink"))
				o.mode = VB_MODE_SINK;
			else if (!strcmp(optarg, "source"))
				o.mode = VB_MODE_SOURCE;
			else
				goto bad;
			break;
		case O_CROSS: o.cross = true; break;
		case 'z':
			if (parse_uint(optarg, 14, 65000, &o.pkt_size) < 0)
				goto bad;
			break;
		case 'q':
			if (parse_uint(optarg, 1, VB_MAX_QUEUE_PAIRS, &o.queue_pairs) < 0)
				goto bad;
			break;
		case 'k': o.kick_driven = true; break;
		case 'd':
			o.duration = strtod(optarg, &end);
			if (end == optarg || *end || !(o.duration > 0))
				goto bad;
			break;
		case 'C':
			if (parse_uint(optarg, 0, CPU_SETSIZE - 1, &cpu) < 0)
				goto bad;
			pin = true;
			break;
		case 'Q': o.quiet = true; break;
		case O_NO_MRG: o.features &= ~(1ull << VIRTIO_NET_F_MRG_RXBUF); break;
		case O_NO_EVIDX: o.features &= ~(1ull << VIRTIO_RING_F_EVENT_IDX); break;
		case O_NO_INORDER: o.features &= ~(1ull << VIRTIO_F_IN_ORDER); break;
		case O_NO_V1: o.features &= ~(1ull << VIRTIO_F_VERSION_1); break;
		case O_NO_PROTO:
			o.features &= ~(1ull << VHOST_USER_F_PROTOCOL_FEATURES);
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || !o.socket_path || (o.cross && o.mode != VB_MODE_LOOPBACK)) {
		fprintf(stderr, "mpops-vhost: %s\n", optind < argc ? "unexpected argument" :
			!o.socket_path ? "--socket PATH is required" :
			"--cross is a variant of loopback: use it with --mode loopback");
		usage(stderr);
		return 2;
	}
	/* Frontends learn the number of queue pairs from their own config. */
	if (o.queue_pairs > 1)
		o.features |= 1ull << VIRTIO_NET_F_MQ;

	if (pin) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0)
			fprintf(stderr, "mpops-vhost: cannot pin to CPU %u: %s\n", cpu,
				strerror(errno));
	}
	/* No SA_RESTART: a signal must wake epoll_wait. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = vb_fault_init();
	if (rc < 0) {
		fprintf(stderr, "mpops-vhost: cannot catch SIGBUS on guest memory: %s\n",
			strerror(-rc));
		return 1;
	}

	vb_dev_init(&dev, &o);
	if (o.mode == VB_MODE_SOURCE && vb_source_init(&dev) < 0) {
		fprintf(stderr, "mpops-vhost: out of memory\n");
		return 1;
	}
	rc = vb_socket_open(&dev);
	if (rc < 0) {
		fprintf(stderr, "mpops-vhost: cannot %s %s: %s\n", o.client ? "use" : "listen on",
			o.socket_path, strerror(-rc));
		vb_socket_close(&dev);
		return 1;
	}
	vb_log("%s %s, mode %s, %u queue pair%s, %s, features 0x%llx",
	       o.client ? "connecting to" : "listening on", o.socket_path,
	       o.mode == VB_MODE_LOOPBACK ? (o.cross ? "loopback (cross)" : "loopback") :
	       o.mode == VB_MODE_SINK ? "sink" : "source", o.queue_pairs, o.queue_pairs == 1 ? "" : "s",
	       o.kick_driven ? "kick-driven" : "busy polling", (unsigned long long)o.features);

	start = now_s();
	rc = run(&dev);
	vb_socket_close(&dev);
	print_json(&dev, now_s() - start);
	free(dev.frame);
	return rc < 0 ? 1 : 0;
bad:
	fprintf(stderr, "mpops-vhost: bad value '%s' for --%s\n", optarg,
		c == 'm' ? "mode" : c == 'z' ? "size" : c == 'q' ? "queues" :
		c == 'd' ? "duration" : "cpu");
	usage(stderr);
	return 2;
}
