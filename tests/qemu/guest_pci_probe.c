/*
 * guest_pci_probe: runs inside the QEMU guest (statically linked, no libraries).
 *
 * Finds QEMU's virtio-net PCI devices in sysfs, binds one to uio_pci_generic,
 * opens its /dev/uioN and reads what a PCI transport will need:
 *   legacy (1af4:1000, I/O BAR0): host features, queue 0 size and the MAC from the
 *     virtio 0.9.5 header, through iopl(3) and in/out instructions;
 *   modern (1af4:1041): the virtio capabilities from the config space, then
 *     device_feature from the common cfg and the MAC from the device cfg, through
 *     an mmap of the sysfs resourceN file of the BAR that holds them.
 * Prints one "key=value" line per finding, for the test script to check.
 *
 *   guest_pci_probe [BDF]     default: the first virtio-net device found
 *
 * Exit status 0 when everything was read, 1 otherwise (reason on stderr).
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SYSFS_PCI "/sys/bus/pci/devices"
#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_NET_LEGACY 0x1000 /* also transitional */
#define VIRTIO_NET_MODERN 0x1041

/* PCI config space */
#define PCI_STATUS 0x06
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_BAR0 0x10
#define PCI_CAP_PTR 0x34
#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

/* virtio 0.9.5 legacy header, in I/O BAR0 */
#define VIRTIO_LEGACY_HOST_FEATURES 0
#define VIRTIO_LEGACY_QUEUE_SIZE 12
#define VIRTIO_LEGACY_QUEUE_SEL 14
#define VIRTIO_LEGACY_STATUS 18
#define VIRTIO_LEGACY_CONFIG 20 /* device config, while MSI-X is off */

/* virtio 1.x PCI capabilities (struct virtio_pci_cap) and common cfg */
enum {
	VIRTIO_PCI_CAP_COMMON_CFG = 1,
	VIRTIO_PCI_CAP_NOTIFY_CFG = 2,
	VIRTIO_PCI_CAP_ISR_CFG = 3,
	VIRTIO_PCI_CAP_DEVICE_CFG = 4,
};
#define VIRTIO_COMMON_DFSELECT 0x00
#define VIRTIO_COMMON_DF 0x04
#define VIRTIO_COMMON_NUM_QUEUES 0x12

#define PCI_NUM_BARS 6

struct probe {
	char bdf[NAME_MAX + 1];
	unsigned int device_id;
	uint8_t config[256];
	/* modern: each BAR mapped at most once */
	volatile uint8_t *bar[PCI_NUM_BARS];
	size_t bar_len[PCI_NUM_BARS];
};

static int fail(int err, const char *fmt, ...)
{
	va_list ap;

	fputs("guest_pci_probe: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, ": %s", strerror(err));
	fputc('\n', stderr);
	return err ? -err : -EINVAL;
}

/* ---------------------------------------------------------------- sysfs */

static int sysfs_read(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static int sysfs_write(const char *path, const char *val)
{
	size_t len = strlen(val);
	ssize_t n;
	int fd = open(path, O_WRONLY);

	if (fd < 0)
		return fail(errno, "open %s", path);
	n = write(fd, val, len);
	close(fd);
	if (n < 0)
		return fail(errno, "write '%s' to %s", val, path);
	return 0;
}

static int sysfs_hex(const char *bdf, const char *attr, unsigned int *val)
{
	char path[PATH_MAX], buf[32];
	int ret;

	snprintf(path, sizeof(path), SYSFS_PCI "/%s/%s", bdf, attr);
	ret = sysfs_read(path, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	*val = (unsigned int)strtoul(buf, NULL, 16);
	return 0;
}

/* The driver bound to bdf, "" if none. */
static void sysfs_driver(const char *bdf, char *name, size_t len)
{
	char path[PATH_MAX], link[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), SYSFS_PCI "/%s/driver", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0) {
		name[0] = '\0';
		return;
	}
	link[n] = '\0';
	snprintf(name, len, "%.*s", NAME_MAX, strrchr(link, '/') ? strrchr(link, '/') + 1 : link);
}

/* ---------------------------------------------------------------- discovery */

static int is_virtio_net(const char *bdf, unsigned int *device_id)
{
	unsigned int vendor, device;

	if (sysfs_hex(bdf, "vendor", &vendor) < 0 || sysfs_hex(bdf, "device", &device) < 0)
		return 0;
	if (vendor != VIRTIO_VENDOR)
		return 0;
	if (device != VIRTIO_NET_LEGACY && device != VIRTIO_NET_MODERN)
		return 0;
	*device_id = device;
	return 1;
}

/* Lists every virtio-net device; picks want (or the first, sorted by BDF). */
static int find_device(struct probe *p, const char *want)
{
	struct dirent **names;
	unsigned int id;
	int n, found = 0;

	n = scandir(SYSFS_PCI, &names, NULL, alphasort);
	if (n < 0)
		return fail(errno, "scandir " SYSFS_PCI);
	for (int i = 0; i < n; i++) {
		const char *bdf = names[i]->d_name;

		if (bdf[0] != '.' && is_virtio_net(bdf, &id)) {
			printf("device=%s %04x:%04x\n", bdf, VIRTIO_VENDOR, id);
			if (!found && (!want || !strcmp(want, bdf))) {
				snprintf(p->bdf, sizeof(p->bdf), "%s", bdf);
				p->device_id = id;
				found = 1;
			}
		}
		free(names[i]);
	}
	free(names);
	if (!found)
		return fail(0, "no virtio-net device%s%s", want ? " " : "", want ? want : "");
	printf("probe=%s\n", p->bdf);
	return 0;
}

/* ---------------------------------------------------------------- uio */

static int bind_uio(const struct probe *p)
{
	char path[PATH_MAX], drv[NAME_MAX + 1];
	int ret;

	sysfs_driver(p->bdf, drv, sizeof(drv));
	if (!strcmp(drv, "uio_pci_generic"))
		return 0;
	if (drv[0]) {
		snprintf(path, sizeof(path), SYSFS_PCI "/%s/driver/unbind", p->bdf);
		ret = sysfs_write(path, p->bdf);
		if (ret < 0)
			return ret;
	}
	snprintf(path, sizeof(path), SYSFS_PCI "/%s/driver_override", p->bdf);
	ret = sysfs_write(path, "uio_pci_generic");
	if (ret < 0)
		return ret;
	ret = sysfs_write("/sys/bus/pci/drivers_probe", p->bdf);
	if (ret < 0)
		return ret;
	sysfs_driver(p->bdf, drv, sizeof(drv));
	if (strcmp(drv, "uio_pci_generic"))
		return fail(0, "%s: bound to '%s' after drivers_probe, not uio_pci_generic",
			    p->bdf, drv);
	printf("driver=uio_pci_generic\n");
	return 0;
}

/* Opens /dev/uioN of the bound device; devtmpfs may create it a moment late. */
static int open_uio(const struct probe *p, int *fd_out)
{
	char path[PATH_MAX], dev[NAME_MAX + 8] = "";
	struct dirent *e;
	DIR *d;
	int fd = -1;

	snprintf(path, sizeof(path), SYSFS_PCI "/%s/uio", p->bdf);
	d = opendir(path);
	if (!d)
		return fail(errno, "opendir %s", path);
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "uio", 3))
			snprintf(dev, sizeof(dev), "/dev/%s", e->d_name);
	closedir(d);
	if (!dev[0])
		return fail(0, "%s: no uio device", path);
	for (int i = 0; i < 50 && fd < 0; i++) {
		fd = open(dev, O_RDWR | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT)
			usleep(20000);
	}
	if (fd < 0)
		return fail(errno, "open %s", dev);
	printf("uio=%s\n", dev);
	*fd_out = fd;
	return 0;
}

static int read_config(struct probe *p)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), SYSFS_PCI "/%s/config", p->bdf);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return fail(errno, "open %s", path);
	n = pread(fd, p->config, sizeof(p->config), 0);
	close(fd);
	if (n < 0)
		return fail(errno, "read %s", path);
	/* Beyond 64 bytes only root may read: the capabilities live there. */
	if (n < (ssize_t)sizeof(p->config))
		return fail(0, "%s: %zd bytes, not %zu", path, n, sizeof(p->config));
	return 0;
}

static uint16_t cfg16(const struct probe *p, unsigned int off)
{
	uint16_t v;

	memcpy(&v, &p->config[off], sizeof(v));
	return le16toh(v);
}

static uint32_t cfg32(const struct probe *p, unsigned int off)
{
	uint32_t v;

	memcpy(&v, &p->config[off], sizeof(v));
	return le32toh(v);
}

static void print_mac(const uint8_t mac[6])
{
	printf("mac=%02x:%02x:%02x:%02x:%02x:%02x\n",
	       mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

/* Whether the device's MSI-X is enabled: it moves the legacy device config. */
static int msix_enabled(const struct probe *p)
{
	unsigned int pos;

	if (!(cfg16(p, PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return 0;
	for (pos = p->config[PCI_CAP_PTR] & ~3u; pos; pos = p->config[pos + 1] & ~3u)
		if (p->config[pos] == PCI_CAP_ID_MSIX)
			return !!(cfg16(p, pos + 2) & 0x8000);
	return 0;
}

/* ---------------------------------------------------------------- legacy */

static int probe_legacy(const struct probe *p)
{
	uint32_t bar0 = cfg32(p, PCI_BAR0);
	uint8_t mac[6];
	uint16_t port;

	if (!(bar0 & 1))
		return fail(0, "%s: BAR0 0x%08" PRIx32 " is not an I/O BAR", p->bdf, bar0);
	if (msix_enabled(p))
		return fail(0, "%s: MSI-X is on; uio_pci_generic should leave it off", p->bdf);
	port = (uint16_t)(bar0 & ~3u);
	/* Per process, per thread: a secondary must ask for it itself. */
	if (iopl(3) < 0)
		return fail(errno, "iopl(3)");
	printf("transport=legacy\n");
	printf("io_base=0x%04x\n", port);
	printf("features=0x%08" PRIx32 "\n", inl(port + VIRTIO_LEGACY_HOST_FEATURES));
	outw(0, port + VIRTIO_LEGACY_QUEUE_SEL);
	printf("queue0_size=%u\n", inw(port + VIRTIO_LEGACY_QUEUE_SIZE));
	printf("status=0x%02x\n", inb(port + VIRTIO_LEGACY_STATUS));
	for (int i = 0; i < 6; i++)
		mac[i] = inb(port + VIRTIO_LEGACY_CONFIG + i);
	print_mac(mac);
	return 0;
}

/* ---------------------------------------------------------------- modern */

/* Maps BAR bar through sysfs resourceN (once); its size comes from fstat, since
 * lseek to the end of a sysfs file returns 0. */
static int map_bar(struct probe *p, unsigned int bar, volatile uint8_t **base, size_t *len)
{
	char path[PATH_MAX];
	struct stat st;
	void *m;
	int fd;

	if (bar >= PCI_NUM_BARS)
		return fail(0, "BAR %u out of range", bar);
	if (!p->bar[bar]) {
		snprintf(path, sizeof(path), SYSFS_PCI "/%s/resource%u", p->bdf, bar);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return fail(errno, "open %s", path);
		if (fstat(fd, &st) < 0 || st.st_size <= 0) {
			close(fd);
			return fail(errno, "%s: no size", path);
		}
		m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		if (m == MAP_FAILED)
			return fail(errno, "mmap %s", path);
		p->bar[bar] = m;
		p->bar_len[bar] = (size_t)st.st_size;
		printf("bar%u_size=%zu\n", bar, p->bar_len[bar]);
	}
	*base = p->bar[bar];
	*len = p->bar_len[bar];
	return 0;
}

struct vcap {
	int found;
	uint8_t bar;
	uint32_t offset, length;
};

/* Maps the structure a capability describes; checks it fits in its BAR. */
static int map_cap(struct probe *p, const struct vcap *c, const char *what,
		   volatile uint8_t **out)
{
	volatile uint8_t *base;
	size_t len;
	int ret;

	if (!c->found)
		return fail(0, "%s: no %s capability", p->bdf, what);
	ret = map_bar(p, c->bar, &base, &len);
	if (ret < 0)
		return ret;
	if ((uint64_t)c->offset + c->length > len)
		return fail(0, "%s: %s at %u+%u beyond BAR%u (%zu bytes)", p->bdf, what,
			    c->offset, c->length, c->bar, len);
	*out = base + c->offset;
	return 0;
}

static int probe_modern(struct probe *p)
{
	static const char *const names[] = { "?", "common", "notify", "isr", "device" };
	struct vcap caps[5] = { 0 };
	volatile uint8_t *common, *devcfg;
	uint32_t lo, hi;
	uint8_t mac[6];
	unsigned int pos;
	int ret;

	if (!(cfg16(p, PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return fail(0, "%s: no capability list", p->bdf);
	/* The first capability of each type counts (virtio 1.x, 4.1.4). */
	for (pos = p->config[PCI_CAP_PTR] & ~3u; pos; pos = p->config[pos + 1] & ~3u) {
		uint8_t type;

		if (pos > sizeof(p->config) - 16)
			return fail(0, "%s: capability at 0x%x out of range", p->bdf, pos);
		if (p->config[pos] != PCI_CAP_ID_VNDR)
			continue;
		type = p->config[pos + 3];
		printf("cap=0x%02x type=%u", pos, type);
		if (type >= 1 && type <= 4) {
			printf(" (%s) bar=%u offset=0x%x length=0x%x", names[type],
			       p->config[pos + 4], cfg32(p, pos + 8), cfg32(p, pos + 12));
			if (type == VIRTIO_PCI_CAP_NOTIFY_CFG)
				printf(" multiplier=%u", cfg32(p, pos + 16));
			if (!caps[type].found)
				caps[type] = (struct vcap){ 1, p->config[pos + 4],
							   cfg32(p, pos + 8), cfg32(p, pos + 12) };
		}
		printf("\n");
	}
	ret = map_cap(p, &caps[VIRTIO_PCI_CAP_COMMON_CFG], "common cfg", &common);
	if (ret < 0)
		return ret;
	ret = map_cap(p, &caps[VIRTIO_PCI_CAP_DEVICE_CFG], "device cfg", &devcfg);
	if (ret < 0)
		return ret;

	printf("transport=modern\n");
	*(volatile uint32_t *)(common + VIRTIO_COMMON_DFSELECT) = htole32(0);
	lo = le32toh(*(volatile uint32_t *)(common + VIRTIO_COMMON_DF));
	*(volatile uint32_t *)(common + VIRTIO_COMMON_DFSELECT) = htole32(1);
	hi = le32toh(*(volatile uint32_t *)(common + VIRTIO_COMMON_DF));
	printf("features=0x%08" PRIx32 "%08" PRIx32 "\n", hi, lo);
	printf("num_queues=%u\n",
	       le16toh(*(volatile uint16_t *)(common + VIRTIO_COMMON_NUM_QUEUES)));
	for (int i = 0; i < 6; i++)
		mac[i] = devcfg[i];
	print_mac(mac);
	return 0;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	struct probe p = { 0 };
	int uio_fd = -1, ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 2) {
		fprintf(stderr, "usage: %s [BDF]\n", argv[0]);
		return 2;
	}
	ret = find_device(&p, argc == 2 ? argv[1] : NULL);
	if (!ret)
		ret = bind_uio(&p);
	if (!ret)
		ret = open_uio(&p, &uio_fd);
	if (!ret)
		ret = read_config(&p);
	if (!ret) {
		printf("subsystem_device=0x%04x\n", cfg16(&p, 0x2e));
		ret = p.device_id == VIRTIO_NET_MODERN ? probe_modern(&p) : probe_legacy(&p);
	}
	for (unsigned int i = 0; i < PCI_NUM_BARS; i++)
		if (p.bar[i])
			munmap((void *)p.bar[i], p.bar_len[i]);
	if (uio_fd >= 0)
		close(uio_fd);
	return ret < 0 ? 1 : 0;
}
