/* SPDX-License-Identifier: MIT */
/*
 * virtio-net probe: a polled driver (no interrupts) with a tiny static IPv4 stack.
 *
 *   mode=tap  ip=A.B.C.D peer=A.B.C.D [pings=N] [wait=SECONDS]
 *       ARP for the peer (the host side of the TAP or bridge) and expect its reply; print
 *       "virtio_net: READY"; then answer ARP requests and ICMP echo requests for our address
 *       until N echo requests (default 3) were answered.
 *   mode=user [fwdport=N] [wait=SECONDS]
 *       DHCP DISCOVER through passt, expect an OFFER; ARP for the offered router and expect
 *       the reply; with fwdport, print "virtio_net: READY" and wait for a TCP SYN to that port
 *       (the host connected to the forwarded port and passt opened the guest side).
 *
 * Also checked on the way: the device config MAC, FEATURES_OK with MRG_RXBUF and the control
 * queue, the promiscuous-off / MAC table commands, num_buffers, and used lengths (the driver
 * is lib/vnet.c).
 */
#include "vnet.h"

PROBE("virtio_net");

#define NRX 32

static struct vnet net;
static uint64_t deadline;

/* The runner reacts to this line. Vireo's UART holds the last byte written until the next
 * UART access, so look at the line status register once to push the newline out. */
static void say_ready(void)
{
	printf("virtio_net: READY\n");
	(void)inb(PORT_COM1 + 5);
}

static void dev_up(void)
{
	uint64_t want =
	    VNET_F_MAC | VNET_F_STATUS | VNET_F_MRG_RXBUF | VNET_F_CTRL_VQ | VNET_F_CTRL_RX;
	const uint8_t *mac = net.mac;
	vnet_open(&net, want, want);
	CHECK(!(mac[0] & 1) && (mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]),
	      "config MAC is not a unicast address");
	CHECK(mmio_read16(net.dev.device + 6) & 1, "link is down (status 0x%x)",
	      mmio_read16(net.dev.device + 6));
	vnet_start(&net, 1, NRX, 16, VNET_CTRL);
	/* Filter on: our address and broadcast only (ARP replies are unicast to us). */
	uint8_t off = 0, table[8] = {0};
	CHECK(vnet_ctrl(&net, 0, 0, &off, 1) == 0, "CTRL_RX_PROMISC off refused");
	CHECK(vnet_ctrl(&net, 1, 0, table, 8) == 0, "CTRL_MAC_TABLE_SET (empty) refused");
}

static void resolve(const uint8_t ip[4], uint8_t mac[6], const char *what)
{
	CHECK(vnet_resolve(&net, ip, mac, deadline, 0),
	      "no ARP reply from %u.%u.%u.%u (%u frames received)", ip[0], ip[1], ip[2], ip[3],
	      net.rx[0].frames);
	printf("virtio_net: %s %u.%u.%u.%u is at %02x:%02x:%02x:%02x:%02x:%02x\n", what, ip[0],
	       ip[1], ip[2], ip[3], mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

/* ---- tap mode: ARP, then answer pings ----------------------------------------------------- */

static void tap_mode(void)
{
	unsigned want = (unsigned)cmdline_u64("pings", 3), answered = 0;
	uint8_t peerip[4], peermac[6], src[4];
	uint16_t slot;
	uint32_t len;
	uint8_t *f;

	CHECK(parse_ip("ip", net.ip) && parse_ip("peer", peerip), "mode=tap needs ip= and peer=");
	resolve(peerip, peermac, "peer");
	say_ready();
	while (answered < want && (f = vnet_rx_wait(&net, deadline, NULL, &slot, &len))) {
		memcpy(src, f + ETH_HLEN + 12, 4);
		int a = vnet_answer(&net, 0, f, len, slot);
		if (!a)
			vnet_rx_post(&net, 0, slot);
		else if (a == VNET_ANSWERED_ECHO)
			printf("virtio_net: echo reply %u to %u.%u.%u.%u\n", ++answered, src[0],
			       src[1], src[2], src[3]);
	}
	CHECK(answered >= want, "answered %u of %u echo requests before the deadline", answered,
	      want);
}

/* ---- user mode: DHCP through passt ------------------------------------------------------- */

static void user_mode(void)
{
	struct vnet_lease l;
	uint8_t gwmac[6];
	const uint8_t *router = l.router, *ip = net.ip;
	uint16_t slot;
	uint32_t len;
	uint8_t *f;

	CHECK(vnet_dhcp_offer(&net, deadline, &l), "no DHCP OFFER (%u frames received)",
	      net.rx[0].frames);
	memcpy(net.ip, l.addr, 4);
	if (!be32(l.router))
		router = l.siaddr;
	printf("virtio_net: DHCP offer %u.%u.%u.%u, router %u.%u.%u.%u\n", ip[0], ip[1], ip[2],
	       ip[3], router[0], router[1], router[2], router[3]);
	CHECK(be32(ip), "offer without an address");
	resolve(router, gwmac, "router");

	uint64_t port = cmdline_u64("fwdport", 0);
	if (!port)
		return;
	say_ready();
	while ((f = vnet_rx_wait(&net, deadline, NULL, &slot, &len))) {
		const uint8_t *p = f + ETH_HLEN;
		bool syn = be16(f + 12) == ETH_P_IP && p[9] == 6 && !memcmp(p + 16, ip, 4) &&
			   be16(p + 20 + 2) == port && (p[20 + 13] & 0x02);
		if (!vnet_answer(&net, 0, f, len, slot))
			vnet_rx_post(&net, 0, slot);
		if (syn) {
			printf("virtio_net: TCP SYN for forwarded port %lu\n", port);
			return;
		}
	}
	probe_fail("no TCP SYN for forwarded port %lu", port);
}

void probe_main(const struct hvm_start_info *si)
{
	char mode[8] = "";
	(void)si;
	deadline = time_us() + cmdline_u64("wait", 20) * 1000000;
	dev_up();
	cmdline_str("mode", mode, sizeof(mode));
	if (!strncmp(mode, "tap", 4))
		tap_mode();
	else if (!strncmp(mode, "user", 5))
		user_mode();
	else
		probe_fail("mode=tap or mode=user expected, got '%s'", mode);
	printf("virtio_net: %u frames received\n", net.rx[0].frames);
	CHECK(vdev_reset(&net.dev), "device reset does not complete");
	probe_pass();
}
