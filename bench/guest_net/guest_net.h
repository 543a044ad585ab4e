/* SPDX-License-Identifier: MIT */
/*
 * Declarations shared by the network benchmark guest's files: guest_net.c (the polled virtio-net
 * driver, ARP/DHCP, the UDP modes, probe_main) and tcp.c (the minimal TCP sender of mode=tcp).
 * The guest is single-threaded and polls; the state below is set up by dev_up(), the address
 * configuration and resolve() in probe_main before any traffic mode runs. See guest_net.c's
 * top comment for the command line and the console protocol.
 */
#ifndef BENCH_GUEST_NET_H
#define BENCH_GUEST_NET_H

#include "virtio.h"
#include "netutil.h"

#define VIRTIO_ID_NET_MODERN 0x1041
#define F_CSUM (1ull << 0)
#define F_MAC (1ull << 5)
#define F_HOST_TSO4 (1ull << 11)
#define F_MRG_RXBUF (1ull << 15)
#define F_STATUS (1ull << 16)
#define HDR 12 /* struct virtio_net_hdr_v1 */
#define QSZ 256
#define NSLOT (QSZ / 2) /* transmit slots: descriptors 2k (headers) and 2k+1 (payload) */
#define BUFSZ 2048
#define SLOTBUF 128
#define PAYLOAD_MAX 65536
#define ETH_IP_TCP 54

/* State shared with tcp.c (the rest of the driver state is private to guest_net.c). */
extern struct vdev v;
extern struct vq txq;
extern uint8_t slotbuf[NSLOT][BUFSZ];
extern bool tmpl[NSLOT]; /* slot holds the TCP data template (eth() clears it) */
extern uint8_t dmac[6], myip[4], dst[4];
extern uint16_t port;
extern uint64_t deadline;

static inline uint32_t ip32(const uint8_t *p) { return be32(p); }

/* guest_net.c: transmit and receive rings (see there for the in-order scheme) */
unsigned tx_slot(void);
void tx_reclaim(void);
void tx_flush(void);
void tx_desc(unsigned k, size_t hlen, size_t plen);
void tx_queue(unsigned k, size_t hlen, size_t plen);
void tx_inorder_begin(void);
unsigned tx_inorder_room(void);
void tx_inorder_end(void);
uint8_t *rx_poll(uint16_t *slot, uint32_t *flen);
void rx_done(uint16_t slot);
void rx_flush(void);
bool rx_last(uint16_t *n, uint8_t **frame, uint32_t *flen);
void rx_last_done(uint16_t n);

/* guest_net.c: frames and the console markers */
uint8_t *eth(uint8_t *buf, const uint8_t to[6], uint16_t type);
uint8_t *ip_hdr(uint8_t *p, uint8_t proto, const uint8_t to[4], size_t payload_len, uint16_t id);
bool arp_answer(uint8_t *f, uint32_t len, uint16_t slot);
void marker(const char *what, const char *mode, uint64_t frames, uint64_t bytes);

/* tcp.c: mode=tcp, a connection to dst:port sending total bytes */
void tcp_out(uint64_t total);

#endif
