/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A secondary that talks to the kernel's stack through an AF_XDP port:
 * it asks for IP's MAC with ARP, then pings it, through the port the
 * primary made, and checks both answers. It sends on queue pair 0 and
 * receives on every one (the kernel picks the queue of its replies).
 *
 *   afxdp-ping RUNDIR REGION PORT MY_IP PEER_IP
 *
 * Prints "arp reply from MAC" and "echo reply seq N", then "ok"; exit 1
 * with a line saying what did not come back.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/if_ether.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpops/afxdp.h>
#include <mpops/mpops.h>
#include <mpops/pkt.h>
#include <mpops/port.h>

static struct mpops_port *port;
static struct mpops_pktpool *pool;
static void *base;
static uint8_t mac[6];
static uint16_t nb_qp;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint16_t csum(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (n & 1)
		s += (uint32_t)b[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return htons((uint16_t)~s);
}

static int send_frame(const void *frame, size_t len)
{
	struct mpops_pkt *m = mpops_pkt_alloc(pool);

	if (!m)
		return -ENOBUFS;
	memcpy(mpops_pkt_data(base, m), frame, len);
	m->data_len = (uint16_t)len;
	m->pkt_len = (uint32_t)len;
	if (mpops_tx_burst(port, 0, &m, 1) != 1) {
		mpops_pkt_free(pool, m);
		return -EAGAIN;
	}
	return 0;
}

/* Wait up to 3 s for a frame @match accepts; copy it to @out. */
static int wait_frame(int (*match)(const uint8_t *, size_t, const void *), const void *arg,
		      uint8_t *out, size_t *len)
{
	double end = now() + 3;

	while (now() < end) {
		struct mpops_pkt *pk[32];
		int hit = 0;

		for (uint16_t q = 0; q < nb_qp && !hit; q++) {
			int n = mpops_rx_burst(port, q, pk, 32);

			for (int i = 0; i < n; i++) {
				const uint8_t *d = mpops_pkt_data(base, pk[i]);

				if (!hit && match(d, pk[i]->data_len, arg)) {
					memcpy(out, d, pk[i]->data_len);
					*len = pk[i]->data_len;
					hit = 1;
				}
				mpops_pkt_free(pool, pk[i]);
			}
		}
		if (hit)
			return 0;
	}
	return -ETIMEDOUT;
}

struct arp_frame {
	struct ether_header eth;
	struct ether_arp arp;
} __attribute__((packed));

static int is_arp_reply(const uint8_t *d, size_t len, const void *arg)
{
	const struct arp_frame *f = (const void *)d;
	const struct in_addr *peer = arg;

	return len >= sizeof(*f) && f->eth.ether_type == htons(ETHERTYPE_ARP) &&
	       f->arp.arp_op == htons(ARPOP_REPLY) && memcmp(f->arp.arp_spa, peer, 4) == 0 &&
	       memcmp(f->arp.arp_tha, mac, 6) == 0;
}

struct ping_frame {
	struct ether_header eth;
	struct iphdr ip;
	struct icmphdr icmp;
	uint8_t payload[32];
} __attribute__((packed));

static int is_echo_reply(const uint8_t *d, size_t len, const void *arg)
{
	const struct ping_frame *f = (const void *)d;
	const struct ping_frame *req = arg;

	return len >= sizeof(*f) && f->eth.ether_type == htons(ETHERTYPE_IP) &&
	       f->ip.protocol == IPPROTO_ICMP && f->icmp.type == ICMP_ECHOREPLY &&
	       f->icmp.un.echo.id == req->icmp.un.echo.id &&
	       f->icmp.un.echo.sequence == req->icmp.un.echo.sequence &&
	       memcmp(f->payload, req->payload, sizeof(f->payload)) == 0;
}

int main(int argc, char **argv)
{
	struct mpops_attach_opts ao = { .sz = sizeof(ao) };
	struct mpops_port_info pi;
	struct mpops_region *r;
	struct in_addr me, peer;
	struct arp_frame a = { 0 };
	struct ping_frame pf = { 0 };
	uint8_t buf[2048], peer_mac[6];
	size_t len;
	int rc;

	if (argc != 6 || inet_pton(AF_INET, argv[4], &me) != 1 ||
	    inet_pton(AF_INET, argv[5], &peer) != 1) {
		fprintf(stderr, "usage: afxdp-ping RUNDIR REGION PORT MY_IP PEER_IP\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	ao.runtime_dir = argv[1];
	if ((rc = mpops_region_attach(argv[2], &ao, &r)) < 0 ||
	    (rc = mpops_port_open(r, argv[3], &port)) < 0) {
		fprintf(stderr, "afxdp-ping: cannot attach or open: %s\n", strerror(-rc));
		return 1;
	}
	mpops_port_info_get(port, &pi);
	memcpy(mac, pi.mac, 6);
	nb_qp = pi.nb_qp;
	for (uint16_t q = 0; q < nb_qp; q++) {
		if ((rc = mpops_port_claim(port, q)) < 0) {
			fprintf(stderr, "afxdp-ping: cannot claim queue pair %u: %s\n", q, strerror(-rc));
			return 1;
		}
	}
	pool = mpops_port_pool(port);
	base = mpops_region_base(r);

	memset(a.eth.ether_dhost, 0xff, 6);
	memcpy(a.eth.ether_shost, mac, 6);
	a.eth.ether_type = htons(ETHERTYPE_ARP);
	a.arp.arp_hrd = htons(ARPHRD_ETHER);
	a.arp.arp_pro = htons(ETHERTYPE_IP);
	a.arp.arp_hln = 6;
	a.arp.arp_pln = 4;
	a.arp.arp_op = htons(ARPOP_REQUEST);
	memcpy(a.arp.arp_sha, mac, 6);
	memcpy(a.arp.arp_spa, &me, 4);
	memcpy(a.arp.arp_tpa, &peer, 4);
	uint8_t padded[60] = { 0 };	/* the shortest Ethernet frame */

	memcpy(padded, &a, sizeof(a));
	if (send_frame(padded, sizeof(padded)) < 0 || wait_frame(is_arp_reply, &peer, buf, &len) < 0) {
		printf("no arp reply from %s\n", argv[5]);
		return 1;
	}
	memcpy(peer_mac, ((struct arp_frame *)buf)->arp.arp_sha, 6);
	printf("arp reply from %02x:%02x:%02x:%02x:%02x:%02x\n", peer_mac[0], peer_mac[1],
	       peer_mac[2], peer_mac[3], peer_mac[4], peer_mac[5]);

	memcpy(pf.eth.ether_dhost, peer_mac, 6);
	memcpy(pf.eth.ether_shost, mac, 6);
	pf.eth.ether_type = htons(ETHERTYPE_IP);
	pf.ip.version = 4;
	pf.ip.ihl = 5;
	pf.ip.ttl = 64;
	pf.ip.protocol = IPPROTO_ICMP;
	pf.ip.tot_len = htons(sizeof(pf) - sizeof(pf.eth));
	pf.ip.saddr = me.s_addr;
	pf.ip.daddr = peer.s_addr;
	pf.ip.check = csum(&pf.ip, sizeof(pf.ip));
	pf.icmp.type = ICMP_ECHO;
	pf.icmp.un.echo.id = htons(0x6d70);
	pf.icmp.un.echo.sequence = htons(1);
	for (unsigned i = 0; i < sizeof(pf.payload); i++)
		pf.payload[i] = (uint8_t)(i * 7 + 1);
	pf.icmp.checksum = csum(&pf.icmp, sizeof(pf.icmp) + sizeof(pf.payload));
	if (send_frame(&pf, sizeof(pf)) < 0 || wait_frame(is_echo_reply, &pf, buf, &len) < 0) {
		printf("no echo reply from %s\n", argv[5]);
		return 1;
	}
	printf("echo reply seq 1\nok\n");
	for (uint16_t q = 0; q < nb_qp; q++)
		mpops_port_release(port, q);
	mpops_port_close(port);
	mpops_region_detach(r);
	return 0;
}
