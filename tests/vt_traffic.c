/* SPDX-License-Identifier: BSD-3-Clause */
/* Test traffic through a port: see vt_traffic.h. */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vt_traffic.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct stamp {
	uint8_t dst[6], src[6];
	uint16_t type;
	int32_t pid;
	uint32_t seq;
} __attribute__((packed));

void traffic(const char *cmd, struct mpops_port *p, void *base, uint16_t qp, uint64_t count,
	     unsigned size, uint64_t *sentp, uint64_t *gotp, uint64_t *badp)
{
	struct mpops_pktpool *pool = mpops_port_pool(p);
	uint64_t sent = 0, got = 0, bad = 0;
	double end;

	end = now_s() + 10;
	while (!stop && now_s() < end) {
		struct mpops_pkt *pk[32];
		int n;

		/* In loopback, keep fewer in flight than the rx ring holds: the
		 * backend drops (and counts) what finds no rx buffer. */
		if (strcmp(cmd, "rx") != 0 && sent < count &&
		    (strcmp(cmd, "loop") != 0 || sent - got <= 128)) {
			unsigned want = count - sent < 32 ? (unsigned)(count - sent) : 32;

			if (mpops_pkt_alloc_bulk(pool, pk, want) == 0) {
				for (unsigned i = 0; i < want; i++) {
					struct stamp *s = mpops_pkt_data(base, pk[i]);

					memset(s, 0, sizeof(*s));
					memset(s->dst, 0xff, 6);
					s->type = 0xb588;
					s->pid = getpid();
					s->seq = (uint32_t)(sent + i);
					pk[i]->data_len = (uint16_t)size;
					pk[i]->pkt_len = size;
				}
				n = mpops_tx_burst(p, qp, pk, (uint16_t)want);
				if (n < 0)
					n = 0;
				sent += (uint64_t)n;
				if ((unsigned)n < want)
					mpops_pkt_free_bulk(pool, pk + n, want - (unsigned)n);
			}
		}
		n = mpops_rx_burst(p, qp, pk, 32);
		for (int i = 0; i < n; i++) {
			struct stamp *s = mpops_pkt_data(base, pk[i]);

			if (strcmp(cmd, "loop") == 0 && (s->pid != getpid() || pk[i]->pkt_len != size))
				bad++;
			mpops_pkt_free(pool, pk[i]);
		}
		if (n > 0)
			got += (uint64_t)n;
		if (strcmp(cmd, "tx") == 0 && sent >= count)
			break;
		if (strcmp(cmd, "tx") != 0 && got >= count)
			break;
	}
	*sentp = sent;
	*gotp = got;
	*badp = bad;
}

