/*
 * nettool: the two things the guest's net scenarios need that busybox lacks.
 * Built static and put in the initramfs.
 *
 *   nettool gen SEED BYTES
 *       writes BYTES bytes of a deterministic stream (xorshift64* from SEED) to
 *       stdout: the data of a TCP upload, whose sha256 the guest computes from
 *       a second run and the host peer from what it received.
 *
 *   nettool reflect IFACE COUNT [TIMEOUT_S]
 *       sends COUNT raw frames on IFACE (AF_PACKET, ethertype 0x88b5, the
 *       IEEE local experimental one; sizes 60..1514; dst 02:00:00:00:77:01,
 *       src IFACE's MAC, a sequence number and a pattern in the payload) and
 *       counts the frames that come back with the MACs swapped and the
 *       payload intact, each sequence number once. Prints
 *       "nettool: reflect sent S received R duplicates D bad B" and exits 0
 *       only when R == S == COUNT and D == B == 0. Frames are sent in bursts
 *       of at most 32 not yet returned, so a reflecting device's rx queue is
 *       never asked to hold more than that.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ETHERTYPE_TEST 0x88b5
#define MAX_FRAME 1514
#define WINDOW 32

static uint64_t xs_state;

static uint64_t xs_next(void)
{
	xs_state ^= xs_state >> 12;
	xs_state ^= xs_state << 25;
	xs_state ^= xs_state >> 27;
	return xs_state * 0x2545F4914F6CDD1DULL;
}

static int gen(uint64_t seed, unsigned long long bytes)
{
	static uint64_t buf[8192];
	xs_state = seed ? seed : 1;
	while (bytes) {
		size_t n = sizeof(buf);
		for (size_t i = 0; i < sizeof(buf) / sizeof(buf[0]); i++)
			buf[i] = xs_next();
		if (n > bytes)
			n = bytes;
		const char *p = (const char *)buf;
		size_t left = n;
		while (left) {
			ssize_t w = write(1, p, left);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				perror("nettool: gen: write");
				return 1;
			}
			p += w;
			left -= (size_t)w;
		}
		bytes -= n;
	}
	return 0;
}

static const unsigned char peer_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x77, 0x01};

static size_t frame_len(uint32_t seq)
{
	return 60 + (seq * 397u) % (MAX_FRAME - 60 + 1);
}

static unsigned char pattern(uint32_t seq, size_t i)
{
	return (unsigned char)(seq * 31u + i * 7u);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int reflect(const char *ifname, uint32_t count, double timeout)
{
	int fd = socket(AF_PACKET, SOCK_RAW, htons(ETHERTYPE_TEST));
	if (fd < 0) {
		perror("nettool: socket(AF_PACKET)");
		return 1;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
		perror("nettool: SIOCGIFINDEX");
		return 1;
	}
	int ifindex = ifr.ifr_ifindex;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		perror("nettool: SIOCGIFHWADDR");
		return 1;
	}
	unsigned char own_mac[6];
	memcpy(own_mac, ifr.ifr_hwaddr.sa_data, 6);
	struct sockaddr_ll sll;
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETHERTYPE_TEST);
	sll.sll_ifindex = ifindex;
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		perror("nettool: bind");
		return 1;
	}
	unsigned char *seen = calloc(count ? count : 1, 1);
	if (!seen)
		return 1;
	uint32_t sent = 0, received = 0, dups = 0, bad = 0;
	double deadline = now_s() + timeout;
	unsigned char frame[MAX_FRAME + 64];
	while (received + bad < count && now_s() < deadline) {
		/* Keep at most WINDOW frames outstanding. */
		while (sent < count && sent - received < WINDOW) {
			size_t len = frame_len(sent);
			memcpy(frame, peer_mac, 6);
			memcpy(frame + 6, own_mac, 6);
			frame[12] = ETHERTYPE_TEST >> 8;
			frame[13] = ETHERTYPE_TEST & 0xff;
			uint32_t be = htonl(sent);
			memcpy(frame + 14, &be, 4);
			for (size_t i = 18; i < len; i++)
				frame[i] = pattern(sent, i);
			if (send(fd, frame, len, 0) != (ssize_t)len) {
				if (errno == ENOBUFS || errno == EAGAIN) {
					usleep(1000);
					break;
				}
				perror("nettool: send");
				return 1;
			}
			sent++;
		}
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int pr = poll(&pfd, 1, 200);
		if (pr < 0 && errno != EINTR) {
			perror("nettool: poll");
			return 1;
		}
		if (pr <= 0)
			continue;
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, frame, sizeof(frame), MSG_DONTWAIT,
				     (struct sockaddr *)&from, &fl);
		if (n < 0)
			continue;
		if (from.sll_pkttype == PACKET_OUTGOING)
			continue;
		if (n < 18) {
			bad++;
			continue;
		}
		uint32_t seq;
		memcpy(&seq, frame + 14, 4);
		seq = ntohl(seq);
		int ok = memcmp(frame, own_mac, 6) == 0 && memcmp(frame + 6, peer_mac, 6) == 0 &&
			 seq < sent && (size_t)n == frame_len(seq);
		for (size_t i = 18; ok && i < (size_t)n; i++)
			ok = frame[i] == pattern(seq, i);
		if (!ok) {
			bad++;
			fprintf(stderr, "nettool: bad frame of %zd bytes (seq %u)\n", n, seq);
			continue;
		}
		if (seen[seq]) {
			dups++;
			continue;
		}
		seen[seq] = 1;
		received++;
	}
	printf("nettool: reflect sent %u received %u duplicates %u bad %u\n", sent, received, dups,
	       bad);
	return received == count && sent == count && dups == 0 && bad == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "gen") == 0)
		return gen(strtoull(argv[2], NULL, 0), strtoull(argv[3], NULL, 0));
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "reflect") == 0)
		return reflect(argv[2], (uint32_t)strtoul(argv[3], NULL, 0),
			       argc == 5 ? strtod(argv[4], NULL) : 30.0);
	fprintf(stderr, "usage: nettool gen SEED BYTES | reflect IFACE COUNT [TIMEOUT_S]\n");
	return 2;
}
