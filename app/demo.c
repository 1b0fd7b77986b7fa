/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-demo: the whole multi-process picture in one command.
 *
 * Starts a vhost-user backend (our mpops-vhost in loopback mode, unless
 * --vhost-socket names one that runs already), becomes the primary of a
 * region with a virtio-net port of N queue pairs, and starts N secondaries
 * (mpops-demo-worker, another executable), each claiming one queue pair
 * and exchanging packets through the backend. Prints a live line per
 * second with every process's rates, then a summary (or --json).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mpops/mpops.h>
#include <mpops/vtnet.h>
#ifdef MPOPS_HAVE_AFXDP
#include <sched.h>
#include <mpops/afxdp.h>
#endif

#include "app_util.h"

extern char **environ;

struct worker {
	pid_t pid;
	int out;		/* its stdout */
	char line[1024];	/* what it printed: a "resolved" line, then JSON */
	size_t len;
	int told;		/* its "resolved" line was shown */
	int status;
	int done;
};

struct opts {
	int secondaries;
	double duration;
	const char *vhost_socket;
	int vhost_server;
	int mergeable;
	int kick_driven;
	int json;
	int verbose;
	unsigned size;
	const char *rundir;
	int af_xdp;		/* the AF_XDP driver on a veth pair of its own */
};

static volatile sig_atomic_t interrupted;
static void on_int(int sig) { (void)sig; interrupted = 1; }

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mpops-demo [options]\n"
		"  --secondaries N      secondaries, one queue pair each (1..%d, default 2)\n"
		"  --duration SECONDS   how long they exchange packets (default 5)\n"
		"  --size BYTES         packet size (default 64)\n"
		"  --mergeable on|off   mergeable rx buffers (default on)\n"
		"  --vhost-socket PATH  use a running vhost-user backend (dpdk-testpmd, a switch)\n"
		"                       instead of starting mpops-vhost; it must loop packets back\n"
		"  --vhost-server       listen on the socket; the backend connects to us\n"
		"  --kick-driven        run mpops-vhost in kick-driven mode\n"
		"  --runtime-dir DIR    where the region's socket goes (default: a fresh /tmp dir);\n"
		"                       made if missing (mode 0700) and then removed at exit\n"
		"  --af-xdp             the AF_XDP driver instead: in a network namespace of its\n"
		"                       own, a veth pair vxa-vxb; the secondaries use port0 on\n"
		"                       vxa, this process returns their packets through an\n"
		"                       AF_XDP port on vxb (root; needs ip from iproute2)\n"
		"  --verbose            show the backend's log\n"
		"  --json               one JSON object at the end instead of the summary\n",
		VTNET_MAX_QP);
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "secondaries", required_argument, NULL, 's' },
		{ "duration", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 'z' },
		{ "mergeable", required_argument, NULL, 'm' },
		{ "vhost-socket", required_argument, NULL, 'v' },
		{ "vhost-server", no_argument, NULL, 'S' },
		{ "kick-driven", no_argument, NULL, 'k' },
		{ "runtime-dir", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'V' },
		{ "af-xdp", no_argument, NULL, 'X' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	*o = (struct opts){ .secondaries = 2, .duration = 5, .mergeable = 1, .size = 64 };
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's': o->secondaries = atoi(optarg); break;
		case 'd': o->duration = atof(optarg); break;
		case 'z': o->size = (unsigned)atoi(optarg); break;
		case 'm':
			if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
				fprintf(stderr, "mpops-demo: --mergeable takes on or off\n");
				return 2;
			}
			o->mergeable = strcmp(optarg, "on") == 0;
			break;
		case 'v': o->vhost_socket = optarg; break;
		case 'S': o->vhost_server = 1; break;
		case 'k': o->kick_driven = 1; break;
		case 'r': o->rundir = optarg; break;
		case 'j': o->json = 1; break;
		case 'V': o->verbose = 1; break;
		case 'X': o->af_xdp = 1; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return 2;
		}
	}
	if (o->af_xdp && (o->vhost_socket || o->vhost_server || o->kick_driven)) {
		fprintf(stderr, "mpops-demo: --af-xdp has no vhost-user backend: drop --vhost-socket, --vhost-server and --kick-driven\n");
		return 2;
	}
#ifndef MPOPS_HAVE_AFXDP
	if (o->af_xdp) {
		fprintf(stderr, "mpops-demo: built without the AF_XDP driver (install libbpf-dev and libxdp-dev, then rebuild)\n");
		return 2;
	}
#endif
	if (optind != argc || o->secondaries < 1 || o->secondaries > VTNET_MAX_QP ||
	    o->duration <= 0 || o->size < 60 || o->size > 1514) {
		fprintf(stderr, "mpops-demo: bad arguments: 1..%d secondaries, duration > 0, size 60..1514\n",
			VTNET_MAX_QP);
		return 2;
	}
	return 0;
}

/* A program of ours: next to this executable, in the build tree, or on PATH. */
static void find_prog(const char *name, const char *subdir, char *out, size_t len)
{
	char self[PATH_MAX], dir[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	snprintf(out, len, "%s", name);
	if (n <= 0)
		return;
	self[n] = '\0';
	snprintf(dir, sizeof(dir), "%s", dirname(self));
	snprintf(out, len, "%.3000s/%.64s", dir, name);
	if (access(out, X_OK) == 0)
		return;
	snprintf(out, len, "%.3000s/../%.64s/%.64s", dir, subdir, name);
	if (access(out, X_OK) == 0)
		return;
	snprintf(out, len, "%s", name);	/* posix_spawnp looks in PATH */
}

static pid_t spawn(const char *prog, char *const argv[], int *out_fd, int quiet)
{
	posix_spawn_file_actions_t fa;
	int p[2] = { -1, -1 };
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	if (out_fd) {
		if (pipe2(p, O_CLOEXEC) < 0)
			return -1;
		posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	} else if (quiet) {
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	}
	if (posix_spawnp(&pid, prog, &fa, NULL, argv, environ) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	if (out_fd) {
		close(p[1]);
		*out_fd = p[0];
		if (pid < 0)
			close(p[0]);
	}
	return pid;
}

/* Read what a worker printed; mark it done when it closed its stdout. */
static void worker_read(struct worker *w)
{
	char buf[512];
	ssize_t n = read(w->out, buf, sizeof(buf));

	if (n <= 0) {
		w->done = 1;
		return;
	}
	if ((size_t)n > sizeof(w->line) - 1 - w->len)
		n = (ssize_t)(sizeof(w->line) - 1 - w->len);
	memcpy(w->line + w->len, buf, (size_t)n);
	w->len += (size_t)n;
	w->line[w->len] = '\0';
}

static unsigned long long json_u64(const char *line, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	p = strstr(line, pat);
	return p ? strtoull(p + strlen(pat), NULL, 10) : 0;
}

#ifdef MPOPS_HAVE_AFXDP
/* Run "ip ARGS..." and wait. @return 0, or -1 with a line said. */
static int ip(char *const argv[])
{
	pid_t pid;
	int st;

	if (posix_spawnp(&pid, "ip", NULL, NULL, argv, environ) != 0 ||
	    waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "mpops-demo: 'ip %s %s %s' failed: install iproute2 (apt-get install iproute2)\n",
			argv[1], argv[2], argv[3]);
		return -1;
	}
	return 0;
}

/* A network namespace of this process's own (its children join it) with
 * vxa <-> vxb, @nq queues each, IPv6 off: nothing but the demo's packets on
 * the wire. It goes when the demo's processes end. @return 0 or -1 (said). */
static int veth_make(int nq)
{
	char q[16];
	char *add[] = { "ip", "link", "add", "vxa", "numtxqueues", q, "numrxqueues", q, "type",
			"veth", "peer", "name", "vxb", "numtxqueues", q, "numrxqueues", q, NULL };
	char *up_a[] = { "ip", "link", "set", "vxa", "up", NULL };
	char *up_b[] = { "ip", "link", "set", "vxb", "up", NULL };
	const char *v6[] = { "/proc/sys/net/ipv6/conf/default/disable_ipv6",
			     "/proc/sys/net/ipv6/conf/all/disable_ipv6" };

	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "mpops-demo: cannot make a network namespace of its own: %s: run --af-xdp as root\n",
			strerror(errno));
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		FILE *f = fopen(v6[i], "w");

		if (f) {
			fputs("1\n", f);
			fclose(f);
		}
	}
	snprintf(q, sizeof(q), "%d", nq);
	return ip(add) < 0 || ip(up_a) < 0 || ip(up_b) < 0 ? -1 : 0;
}

/* The far end: what arrives on the peer port goes back out on its queue. */
static void peer_forward(struct mpops_port *peer, struct mpops_pktpool *pool, int nq)
{
	for (int q = 0; q < nq; q++) {
		struct mpops_pkt *pk[32];
		int n = mpops_rx_burst(peer, (uint16_t)q, pk, 32), sent;

		if (n <= 0)
			continue;
		sent = mpops_tx_burst(peer, (uint16_t)q, pk, (uint16_t)n);
		if (sent < 0)
			sent = 0;
		if (sent < n)
			mpops_pkt_free_bulk(pool, pk + sent, (unsigned)(n - sent));
	}
}
#endif

int main(int argc, char **argv)
{
	struct mpops_region_opts ro = { .sz = sizeof(ro), .size = 96u << 20 };
	struct vtnet_conf vc = { .sz = sizeof(vc) };
	struct worker w[VTNET_MAX_QP] = { 0 };
	char rundir[PATH_MAX], made_dir[PATH_MAX] = "", sock[PATH_MAX], prog[PATH_MAX];
	char vhost[PATH_MAX];
	uint64_t total_rx = 0, total_tx = 0;
	uint64_t last_rx[VTNET_MAX_QP] = { 0 }, last_tx[VTNET_MAX_QP] = { 0 };
	struct mpops_port *port = NULL, *peer = NULL;
	struct mpops_region *r = NULL;
	FILE *live;
	pid_t backend = -1;
	struct opts o;
	double t0, last;
	int rc, failed = 0, audit = -1;

	if ((rc = parse(argc, argv, &o)) != 0)
		return rc;
	live = o.json ? stderr : stdout;
	signal(SIGINT, on_int);
	signal(SIGTERM, on_int);
	signal(SIGPIPE, SIG_IGN);
	/* Before the backend, which puts its socket there. */
	if (o.rundir) {
		snprintf(rundir, sizeof(rundir), "%s", o.rundir);
		if ((rc = app_dir_make(rundir, made_dir, sizeof(made_dir))) < 0) {
			fprintf(stderr, "mpops-demo: cannot create the runtime directory %s: %s: pick another --runtime-dir\n",
				rundir, strerror(-rc));
			return 1;
		}
	} else {
		snprintf(rundir, sizeof(rundir), "/tmp/mpops-demo-XXXXXX");
		if (!mkdtemp(rundir)) {
			fprintf(stderr, "mpops-demo: cannot create a directory in /tmp: %s: pass --runtime-dir\n",
				strerror(errno));
			return 1;
		}
		snprintf(made_dir, sizeof(made_dir), "%s", rundir);
	}
	ro.runtime_dir = rundir;

	/* The backend. */
	if (o.af_xdp) {
#ifdef MPOPS_HAVE_AFXDP
		if (veth_make(o.secondaries) < 0) {
			failed = 1;
			goto out;
		}
#endif
	} else if (o.vhost_socket) {
		snprintf(sock, sizeof(sock), "%s", o.vhost_socket);
	} else {
		char qs[16], *bargv[12];
		int n = 0;

		snprintf(sock, sizeof(sock), "%.3000s/vhost.sock", rundir);
		snprintf(qs, sizeof(qs), "%d", o.secondaries);
		find_prog("mpops-vhost", "drivers/virtio/backend", vhost, sizeof(vhost));
		bargv[n++] = vhost;
		bargv[n++] = "--socket";
		bargv[n++] = sock;
		bargv[n++] = "--queues";
		bargv[n++] = qs;
		bargv[n++] = "--mode";
		bargv[n++] = "loopback";
		bargv[n++] = "--quiet";
		if (o.vhost_server)
			bargv[n++] = "--client";
		if (o.kick_driven)
			bargv[n++] = "--kick-driven";
		bargv[n] = NULL;
		backend = spawn(vhost, bargv, NULL, !o.verbose);
		if (backend < 0) {
			fprintf(stderr, "mpops-demo: cannot start %s: build it, or pass --vhost-socket\n", vhost);
			failed = 1;
			goto out;
		}
	}

	/* The primary: region, port, start. */
	if ((rc = mpops_region_create("demo", &ro, &r)) < 0) {
		failed = 1;
		goto out;
	}
#ifdef MPOPS_HAVE_AFXDP
	if (o.af_xdp) {
		struct afxdp_conf ac = { .sz = sizeof(ac), .iface = "vxa", .nb_qp = (uint16_t)o.secondaries,
					 .xdp_mode = AFXDP_XDP_NATIVE };
		struct mpops_port_info pi;

		if ((rc = afxdp_port_create(r, "port0", &ac, &port)) < 0 ||
		    (rc = mpops_port_start(port)) < 0 ||
		    (ac.iface = "vxb", (rc = afxdp_port_create(r, "peer", &ac, &peer)) < 0) ||
		    (rc = mpops_port_start(peer)) < 0) {
			fprintf(stderr, "mpops-demo: the AF_XDP ports did not come up: %s\n", strerror(-rc));
			failed = 1;
			goto out;
		}
		for (int q = 0; q < o.secondaries; q++) {
			if ((rc = mpops_port_claim(peer, (uint16_t)q)) < 0) {
				failed = 1;
				goto out;
			}
		}
		mpops_port_info_get(port, &pi);
		fprintf(live, "mpops-demo: primary pid %d, port0 on vxa %02x:%02x:%02x:%02x:%02x:%02x, %u queue pairs, driver %s (ops ID %u)\n",
			(int)getpid(), pi.mac[0], pi.mac[1], pi.mac[2], pi.mac[3], pi.mac[4], pi.mac[5],
			pi.nb_qp, pi.driver, pi.driver_id);
		fprintf(live, "  backend: port 'peer' on vxb (AF_XDP), returning every packet on its queue, in this process; a network namespace of the demo's own\n");
		fprintf(live, "  primary pid %d: ops ID %u = mpops_port_drv/%s -> ops table %p in its own process\n",
			(int)getpid(), pi.driver_id, pi.driver, pi.driver_local);
		goto secondaries;
	}
#endif
	vc.vhost_path = sock;
	vc.server = o.vhost_server;
	vc.nb_qp = (uint16_t)o.secondaries;
	vc.mergeable = o.mergeable ? 1 : -1;
	if ((rc = vtnet_port_create(r, "port0", &vc, &port)) < 0 ||
	    (rc = mpops_port_start(port)) < 0) {
		fprintf(stderr, "mpops-demo: the port did not come up: %s\n", strerror(-rc));
		failed = 1;
		goto out;
	}
	{
		struct mpops_port_info pi;
		struct vtnet_info in;
		char feat[256];

		mpops_port_info_get(port, &pi);
		vtnet_info_get(port, &in);
		vtnet_features_str(in.features, feat, sizeof(feat));
		fprintf(live, "mpops-demo: primary pid %d, port0 %02x:%02x:%02x:%02x:%02x:%02x, %u queue pairs, driver %s, transport %s (ops ID %u)\n",
			(int)getpid(), pi.mac[0], pi.mac[1], pi.mac[2], pi.mac[3], pi.mac[4], pi.mac[5],
			pi.nb_qp, pi.driver, in.transport, in.ops_id);
		fprintf(live, "  features: %s\n  backend: %s%s\n", feat,
			o.vhost_socket ? sock : vhost, o.vhost_socket ? "" : " (loopback)");
		fprintf(live, "  primary pid %d: ops ID %u = %s -> ops table %p in its own process\n",
			(int)getpid(), in.ops_id, in.transport, in.ops_local);
	}

	/* The secondaries. */
#ifdef MPOPS_HAVE_AFXDP
secondaries:
#endif
	find_prog("mpops-demo-worker", "app", prog, sizeof(prog));
	for (int i = 0; i < o.secondaries; i++) {
		char qs[16], ds[32], zs[16];
		char *wargv[] = { prog, rundir, "demo", "port0", qs, ds, zs, NULL };

		snprintf(qs, sizeof(qs), "%d", i);
		snprintf(ds, sizeof(ds), "%.3f", o.duration);
		snprintf(zs, sizeof(zs), "%u", o.size);
		w[i].pid = spawn(prog, wargv, &w[i].out, 0);
		if (w[i].pid < 0) {
			fprintf(stderr, "mpops-demo: cannot start %s\n", prog);
			w[i].done = 1;
			failed = 1;
		}
	}

	/* Live rates, from the shared counters of each queue. */
	t0 = last = app_now_s();
	for (;;) {
		struct pollfd pf[VTNET_MAX_QP];
		int open = 0;

		for (int i = 0; i < o.secondaries; i++) {
			pf[i].fd = w[i].done ? -1 : w[i].out;
			pf[i].events = POLLIN;
			open += !w[i].done;
		}
		if (!open)
			break;
		/* With the AF_XDP peer, this process forwards: no sleeping. */
		poll(pf, (nfds_t)o.secondaries, peer ? 0 : 100);
#ifdef MPOPS_HAVE_AFXDP
		if (peer)
			peer_forward(peer, mpops_port_pool(peer), o.secondaries);
#endif
		for (int i = 0; i < o.secondaries; i++) {
			char *nl;

			if (!w[i].done && (pf[i].revents & (POLLIN | POLLHUP)))
				worker_read(&w[i]);
			if (!w[i].told && strncmp(w[i].line, "resolved: ", 10) == 0 &&
			    (nl = strchr(w[i].line, '\n'))) {
				fprintf(live, "  %.*s\n", (int)(nl - w[i].line - 10), w[i].line + 10);
				w[i].told = 1;
			}
		}
		if (interrupted) {
			for (int i = 0; i < o.secondaries; i++)
				if (w[i].pid > 0 && !w[i].done)
					kill(w[i].pid, SIGTERM);
			interrupted = 0;
		}
		if (app_now_s() - last >= 1.0) {
			struct mpops_port_link l;
			double dt = app_now_s() - last;

			last = app_now_s();
			mpops_port_link_get(port, &l);
			fprintf(live, "%5.1fs link %-4s", last - t0, l.up ? "up" : "down");
			for (int i = 0; i < o.secondaries; i++) {
				struct mpops_port_queue_stats rx, tx;

				mpops_port_stats_get(port, (uint16_t)i, &rx, &tx);
				fprintf(live, " | pid %d q%d rx %.2f tx %.2f Mpps", (int)w[i].pid, i,
					(double)(rx.packets - last_rx[i]) / dt / 1e6,
					(double)(tx.packets - last_tx[i]) / dt / 1e6);
				last_rx[i] = rx.packets;
				last_tx[i] = tx.packets;
			}
			fputc('\n', live);
			fflush(live);
		}
	}
	for (int i = 0; i < o.secondaries; i++) {
		if (w[i].pid > 0) {
			waitpid(w[i].pid, &w[i].status, 0);
			close(w[i].out);
			if (!WIFEXITED(w[i].status) || WEXITSTATUS(w[i].status) != 0 || !w[i].len)
				failed = 1;
		}
	}
	/* Totals across queues: a packet may come back on any queue pair. */
	for (int i = 0; i < o.secondaries; i++) {
		total_rx += json_u64(w[i].line, "rx_packets");
		total_tx += json_u64(w[i].line, "tx_packets");
	}
	if (total_tx && !total_rx) {
		fprintf(stderr, "mpops-demo: %llu packets sent, none came back: the backend must send them back (loopback, or a switch that returns them)\n",
			(unsigned long long)total_tx);
		failed = 1;
	}
	audit = mpops_audit(r, NULL, NULL, 0);
	if (audit != 0)
		failed = 1;

out:
	if (o.json) {
		printf("{\"processes\": [{\"role\": \"primary\", \"pid\": %d, \"queue\": -1, \"rx_packets\": 0, \"tx_packets\": 0, \"errors\": %d, \"exit_status\": %d}",
		       (int)getpid(), audit > 0 ? audit : 0, failed);
		for (int i = 0; i < o.secondaries; i++) {
			if (w[i].pid <= 0)
				continue;
			printf(", {\"role\": \"secondary\", \"pid\": %d, \"queue\": %d, \"rx_packets\": %llu, \"rx_other_queues\": %llu, \"tx_packets\": %llu, \"errors\": %llu, \"exit_status\": %d}",
			       (int)w[i].pid, i, json_u64(w[i].line, "rx_packets"),
			       json_u64(w[i].line, "rx_other_queues"),
			       json_u64(w[i].line, "tx_packets"), json_u64(w[i].line, "errors"),
			       WIFEXITED(w[i].status) ? WEXITSTATUS(w[i].status) : 128 + WTERMSIG(w[i].status));
		}
		printf("], \"total\": {\"rx_packets\": %llu, \"tx_packets\": %llu}}\n",
		       (unsigned long long)total_rx, (unsigned long long)total_tx);
	} else if (r && port) {
		printf("\nsummary (%.1f s):\n  %-9s %7s %5s %12s %12s %7s %6s %s\n", o.duration, "role",
		       "pid", "queue", "rx packets", "tx packets", "errors", "kicks", "exit");
		for (int i = 0; i < o.secondaries; i++) {
			if (w[i].pid <= 0)
				continue;
			printf("  %-9s %7d %5d %12llu %12llu %7llu %6llu %d\n", "secondary", (int)w[i].pid, i,
			       json_u64(w[i].line, "rx_packets"), json_u64(w[i].line, "tx_packets"),
			       json_u64(w[i].line, "errors"), json_u64(w[i].line, "kicks"),
			       WIFEXITED(w[i].status) ? WEXITSTATUS(w[i].status) : 128 + WTERMSIG(w[i].status));
		}
		printf("  %-9s %7d %5s %12llu %12llu\n", "total", (int)getpid(), "-",
		       (unsigned long long)total_rx, (unsigned long long)total_tx);
		printf("audit: %d process-local pointers in shared memory (primary); each secondary audited too\n",
		       audit);
		printf("%s\n", failed ? "FAILED" : "ok");
	}
	if (peer)
		mpops_port_close(peer);
	if (port)
		mpops_port_close(port);
	if (r)
		mpops_region_detach(r);
	if (backend > 0) {
		kill(backend, SIGTERM);
		waitpid(backend, NULL, 0);
	}
	app_dir_remove(made_dir);
	return failed;
}
