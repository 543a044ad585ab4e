/* SPDX-License-Identifier: MIT */
/*
 * Declarations shared by the network benchmark guest's files: guest_net.c (device set-up,
 * addresses, the UDP modes, probe_main) and tcp.c (the minimal TCP sender of mode=tcp). The
 * driver is the probe framework's tests/probe/lib/vnet.h, whose batched ring functions are
 * inline so that the hot loops stay as short as when they were written here. The guest is
 * single-threaded and polls; the state below is set up in probe_main before any traffic mode
 * runs. See guest_net.c's top comment for the command line and the console protocol.
 */
#ifndef BENCH_GUEST_NET_H
#define BENCH_GUEST_NET_H

#include "vnet.h"

#define QSZ 256
#define NSLOT (QSZ / 2) /* transmit slots (vnet.h): descriptors 2k (headers), 2k+1 (payload) */
#define ETH_IP_TCP 54

/* State shared with tcp.c */
extern struct vnet net;
extern uint8_t dmac[6], dst[4];
extern uint16_t port;
extern uint64_t deadline;

void marker(const char *what, const char *mode, uint64_t frames, uint64_t bytes);

/* tcp.c: mode=tcp, a connection to dst:port sending total bytes */
void tcp_out(uint64_t total);

#endif
