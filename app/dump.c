/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-dump: attach read-only to a region and print a port's shared state
 * (the origin's "secondary that dumps the primary's structures"): the port
 * layer's part for any driver (driver ops ID, state, link, epoch, claims,
 * per-queue counters), where the buffers of the port's pool are (free in
 * the ring and in each process's caches, held by each process, on each
 * queue's rings, handed off, held by processes that are gone, lost) and,
 * for a vtnet port, the negotiated features, each virtqueue's indices and
 * the transport's ops ID with its class and implementation.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <mpops/mpops.h>
#include <mpops/vtnet.h>
#ifdef MPOPS_HAVE_AFXDP
#include <mpops/afxdp.h>
#endif

/* The pool: one line of totals, one per process that has handles. */
static void pool_text(const struct mpops_pktpool_census *c)
{
	printf("  pool: %u buffers: %u free (%u in the ring, %u in caches), %u held, %u on rings",
	       c->total, c->free, c->ring, c->cached, c->held, c->on_rings);
	if (c->on_rings_anyq)
		printf(" (%u posted at start)", c->on_rings_anyq);
	printf(", %u handed off, %u of processes gone, %u unaccounted", c->handed_off, c->gone,
	       c->unaccounted);
	if (c->twice)
		printf(", %u twice in the free set (a concurrent double free)", c->twice);
	printf("; lost %llu; given back %llu from processes gone, %llu at stop\n",
	       (unsigned long long)c->lost,
	       (unsigned long long)c->reclaimed, (unsigned long long)c->recovered);
	if (!c->nprocs)
		return;
	printf("  %-8s %5s %7s %7s %7s\n", "pid", "alive", "handles", "cached", "held");
	for (unsigned k = 0; k < c->nprocs; k++)
		printf("  %-8d %5s %7u %7u %7u\n", (int)c->procs[k].pid,
		       c->procs[k].alive ? "yes" : "no", c->procs[k].handles, c->procs[k].cached,
		       c->procs[k].held);
}

static void pool_json(const struct mpops_pktpool_census *c)
{
	printf("\"pool\": {\"total\": %u, \"free\": %u, \"ring\": %u, \"cached\": %u, \"held\": %u, "
	       "\"on_rings\": %u, \"on_rings_at_start\": %u, \"handed_off\": %u, \"gone\": %u, "
	       "\"unaccounted\": %u, \"twice\": %u, \"lost\": %llu, \"reclaimed\": %llu, \"recovered\": %llu, \"processes\": [",
	       c->total, c->free, c->ring, c->cached, c->held, c->on_rings, c->on_rings_anyq,
	       c->handed_off, c->gone, c->unaccounted, c->twice, (unsigned long long)c->lost,
	       (unsigned long long)c->reclaimed, (unsigned long long)c->recovered);
	for (unsigned k = 0; k < c->nprocs; k++)
		printf("%s{\"pid\": %d, \"alive\": %s, \"handles\": %u, \"cached\": %u, \"held\": %u}",
		       k ? ", " : "", (int)c->procs[k].pid, c->procs[k].alive ? "true" : "false",
		       c->procs[k].handles, c->procs[k].cached, c->procs[k].held);
	printf("]}, ");
}

static void usage(FILE *f)
{
	fprintf(f, "usage: mpops-dump [--json] [--runtime-dir DIR] REGION [PORT]\n"
		   "  Print the shared state of port PORT (default port0) of REGION.\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "runtime-dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct mpops_attach_opts ao = { .sz = sizeof(ao), .flags = MPOPS_ATTACH_F_READONLY };
	struct mpops_region *r;
	struct mpops_region_dev rd;
	struct mpops_alloc_stats as = { 0 };
	struct mpops_port *p;
	struct vtnet_info in = { 0 };
	static struct mpops_pktpool_census pc = { .sz = sizeof(pc) };
	struct mpops_port_info pi;
	struct mpops_port_link l;
	int is_vtnet, has_pool, is_afxdp = 0;
#ifdef MPOPS_HAVE_AFXDP
	static struct afxdp_info ax = { .sz = sizeof(ax) };
#endif
	const char *port = "port0";
	char feat[512], dev[512];
	int json = 0, c, rc, nvq;

	while ((c = getopt_long(argc, argv, "jd:h", lo, NULL)) != -1) {
		switch (c) {
		case 'j': json = 1; break;
		case 'd': ao.runtime_dir = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (argc - optind < 1 || argc - optind > 2) {
		usage(stderr);
		return 2;
	}
	if (argc - optind == 2)
		port = argv[optind + 1];
	if ((rc = mpops_region_attach(argv[optind], &ao, &r)) < 0) {
		fprintf(stderr, "mpops-dump: cannot attach to region '%s': %s\n", argv[optind],
			strerror(-rc));
		return 1;
	}
	if ((rc = mpops_port_open(r, port, &p)) < 0) {
		fprintf(stderr, "mpops-dump: no port '%s': %s\n", port, strerror(-rc));
		mpops_region_detach(r);
		return 1;
	}
	mpops_port_info_get(p, &pi);
	mpops_port_link_get(p, &l);
	mpops_region_dev(r, &rd);
	mpops_alloc_stats(r, &as);
	/* A snapshot: exact when nothing moves (see unaccounted). */
	has_pool = mpops_port_pool_census(p, &pc) == 0;
	is_vtnet = strcmp(pi.driver, "vtnet") == 0 && vtnet_info_get(p, &in) == 0;
#ifdef MPOPS_HAVE_AFXDP
	is_afxdp = strcmp(pi.driver, "afxdp") == 0 && afxdp_info_get(p, &ax) == 0;
#endif
	vtnet_features_str(in.features, feat, sizeof(feat));
	vtnet_features_str(in.device_features, dev, sizeof(dev));
	nvq = 2 * pi.nb_qp;
	if (json) {
		printf("{\"port\": \"%s\", \"driver\": {\"ops_id\": %u, \"name\": \"%s\"}, \"started\": %s, \"link_up\": %s, "
		       "\"link_changes\": %u, \"reconnects\": %u, \"epoch\": %u, "
		       "\"mac\": \"%02x:%02x:%02x:%02x:%02x:%02x\", \"nb_qp\": %u, \"primary_pid\": %d, ",
		       pi.name, pi.driver_id, pi.driver, pi.started ? "true" : "false", l.up ? "true" : "false",
		       l.changes, l.reconnects, pi.epoch, pi.mac[0], pi.mac[1], pi.mac[2], pi.mac[3],
		       pi.mac[4], pi.mac[5], pi.nb_qp, (int)pi.primary_pid);
		if (is_vtnet)
			printf("\"features\": \"%#llx\", \"features_names\": \"%s\", \"device_features\": \"%#llx\", "
			       "\"max_qp\": %u, \"ring_size\": %u, \"hdr_size\": %u, "
			       "\"transport\": {\"ops_id\": %u, \"name\": \"%s\"}, ",
			       (unsigned long long)in.features, feat, (unsigned long long)in.device_features,
			       in.max_qp, in.ring_size, in.hdr_size, in.ops_id, in.transport);
#ifdef MPOPS_HAVE_AFXDP
		if (is_afxdp) {
			printf("\"af_xdp\": {\"iface\": \"%s\", \"start_queue\": %u, \"native\": %s, \"zero_copy\": %s, \"busy_poll\": %d, \"ring_size\": %u, \"frame_size\": %u, \"frames\": %u, \"kernel\": [",
			       ax.iface, ax.start_queue, ax.native ? "true" : "false",
			       ax.zero_copy ? "true" : "false", ax.busy_poll, ax.ring_size, ax.frame_size,
			       ax.nb_frames);
			for (unsigned q = 0; q < ax.nb_qp; q++)
				printf("%s{\"qp\": %u, \"rx_dropped\": %llu, \"rx_ring_full\": %llu, \"fill_ring_empty\": %llu, \"rx_invalid\": %llu, \"tx_invalid\": %llu}",
				       q ? ", " : "", q, (unsigned long long)ax.q[q].rx_dropped,
				       (unsigned long long)ax.q[q].rx_ring_full,
				       (unsigned long long)ax.q[q].fill_ring_empty,
				       (unsigned long long)ax.q[q].rx_invalid,
				       (unsigned long long)ax.q[q].tx_invalid);
			printf("]}, ");
		}
#endif
		if (has_pool)
			pool_json(&pc);
		printf("\"memory\": {\"size\": %zu, \"host_used\": %llu, \"dev_off\": %llu, \"dev_size\": %zu, \"dev_used\": %llu}, ",
		       mpops_region_size(r), (unsigned long long)as.bytes_used,
		       (unsigned long long)rd.off, rd.size, (unsigned long long)as.dev_bytes_used);
		printf("\"queues\": [");
	} else {
		printf("port %s: driver %s (ops ID %u), %s, link %s (%u changes, %u device connections), mac %02x:%02x:%02x:%02x:%02x:%02x, epoch %u\n",
		       pi.name, pi.driver, pi.driver_id, pi.started ? "started" : "stopped",
		       l.up ? "up" : "down", l.changes, l.reconnects, pi.mac[0], pi.mac[1], pi.mac[2],
		       pi.mac[3], pi.mac[4], pi.mac[5], pi.epoch);
		if (is_vtnet) {
			printf("  transport: ops ID %u = %s (resolved per process; primary pid %d)\n",
			       in.ops_id, in.transport, (int)pi.primary_pid);
			printf("  features: %s\n  offered:  %s\n", feat, dev);
			printf("  %u of %u queue pairs, ring size %u, header %u bytes\n", pi.nb_qp,
			       in.max_qp, in.ring_size, in.hdr_size);
		} else {
			printf("  %u queue pairs, primary pid %d\n", pi.nb_qp, (int)pi.primary_pid);
		}
#ifdef MPOPS_HAVE_AFXDP
		if (is_afxdp) {
			printf("  AF_XDP on %s queues %u..%u: %s XDP, %s, %u frames of %u bytes, rings of %u%s\n",
			       ax.iface, ax.start_queue, ax.start_queue + ax.nb_qp - 1,
			       ax.native ? "native" : "generic", ax.zero_copy ? "zero-copy" : "copy mode",
			       ax.nb_frames, ax.frame_size, ax.ring_size, ax.busy_poll ? ", busy polling" : "");
			for (unsigned q = 0; q < ax.nb_qp; q++)
				printf("  qp %u kernel: rx dropped %llu, rx ring full %llu, fill ring empty %llu, invalid rx %llu tx %llu\n",
				       q, (unsigned long long)ax.q[q].rx_dropped,
				       (unsigned long long)ax.q[q].rx_ring_full,
				       (unsigned long long)ax.q[q].fill_ring_empty,
				       (unsigned long long)ax.q[q].rx_invalid,
				       (unsigned long long)ax.q[q].tx_invalid);
		}
#endif
		if (has_pool)
			pool_text(&pc);
		printf("  memory: %zu bytes; host part %llu of %llu used; device part (all a device is given) %zu bytes from %#llx, %llu used\n",
		       mpops_region_size(r), (unsigned long long)as.bytes_used,
		       (unsigned long long)as.bytes_total, rd.size, (unsigned long long)rd.off,
		       (unsigned long long)as.dev_bytes_used);
		printf("  %-4s %-3s %5s %6s %6s %6s %5s %5s %12s %14s %6s %6s %8s\n", "vq", "dir",
		       "owner", "avail", "used", "last", "free", "bufs", "packets", "bytes", "errors",
		       "drops", "kicks");
	}
	for (int v = 0; v < nvq; v++) {
		struct mpops_port_queue_stats st[2];
		struct vtnet_vq_info vi;
		const struct mpops_port_queue_stats *s;
		unsigned bufs;

		memset(&vi, 0, sizeof(vi));
		if (is_vtnet && vtnet_vq_info_get(p, (uint16_t)v, &vi) < 0)
			continue;
		(void)is_afxdp;
		mpops_port_stats_get(p, (uint16_t)(v / 2), &st[0], &st[1]);
		s = &st[v % 2];
		/* Buffers on this queue's ring, by the marks the bursts set. */
		bufs = has_pool ? pc.on_queue[(v / 2) % MPOPS_PKTPOOL_CENSUS_QP][v % 2] : 0;
		if (json)
			printf("%s{\"vq\": %d, \"dir\": \"%s\", \"owner_pid\": %d, \"size\": %u, \"avail_idx\": %u, \"used_idx\": %u, \"last_used\": %u, \"num_free\": %u, \"avail_flags\": %u, \"used_flags\": %u, \"avail_event\": %u, \"buffers\": %u, \"packets\": %llu, \"bytes\": %llu, \"errors\": %llu, \"drops\": %llu, \"kicks\": %llu}",
			       v ? ", " : "", v, v % 2 ? "tx" : "rx", (int)pi.owner_pid[v / 2], vi.size,
			       vi.avail_idx, vi.used_idx, vi.last_used, vi.num_free, vi.avail_flags,
			       vi.used_flags, vi.avail_event, bufs, (unsigned long long)s->packets,
			       (unsigned long long)s->bytes, (unsigned long long)s->errors,
			       (unsigned long long)s->drops, (unsigned long long)s->kicks);
		else
			printf("  %-4d %-3s %5d %6u %6u %6u %5u %5u %12llu %14llu %6llu %6llu %8llu\n", v,
			       v % 2 ? "tx" : "rx", (int)pi.owner_pid[v / 2], vi.avail_idx, vi.used_idx,
			       vi.last_used, vi.num_free, bufs, (unsigned long long)s->packets,
			       (unsigned long long)s->bytes, (unsigned long long)s->errors,
			       (unsigned long long)s->drops, (unsigned long long)s->kicks);
	}
	if (json)
		printf("]}\n");
	mpops_port_close(p);
	mpops_region_detach(r);
	return 0;
}
