/* SPDX-License-Identifier: MIT */
/* Network manager: names, modes, CIDR parsing and overlap, state file round trip and
 * rejection of damaged state files, the state directory (no privileges needed). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <cmocka.h>

#include "net/netmgr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_names(void **state)
{
	(void)state;
	assert_true(netmgr_name_valid("lan"));
	assert_true(netmgr_name_valid("a"));
	assert_true(netmgr_name_valid("lab-2"));
	assert_true(netmgr_name_valid("abcdefghijkl")); /* 12: vr- + 12 = 15 */
	assert_false(netmgr_name_valid("abcdefghijklm"));
	assert_false(netmgr_name_valid(""));
	assert_false(netmgr_name_valid("-x"));
	assert_false(netmgr_name_valid("Lan"));
	assert_false(netmgr_name_valid("a_b"));
	assert_false(netmgr_name_valid("a.b"));
	assert_false(netmgr_name_valid("a/b"));
	assert_false(netmgr_name_valid("a b"));
}

static void test_modes(void **state)
{
	(void)state;
	enum netmgr_mode m;
	static const char *const names[] = {"bridged", "nat", "host-only", "isolated"};
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(netmgr_mode_parse(names[i], &m), 0);
		assert_string_equal(netmgr_mode_name(m), names[i]);
	}
	assert_int_equal(netmgr_mode_parse("switch", &m), 0);
	assert_int_equal(m, NETMGR_ISOLATED);
	assert_int_equal(netmgr_mode_parse("NAT", &m), -EINVAL);
	assert_int_equal(netmgr_mode_parse("", &m), -EINVAL);
}

static void test_cidr(void **state)
{
	(void)state;
	uint32_t net = 0;
	unsigned p = 0;
	char buf[16];
	assert_int_equal(netmgr_cidr_parse("10.1.2.0/24", &net, &p), 0);
	assert_int_equal(net, 0x0a010200);
	assert_int_equal(p, 24);
	assert_int_equal(netmgr_cidr_parse("192.168.0.0/16", &net, &p), 0);
	assert_int_equal(netmgr_cidr_parse("0.0.0.0/0", &net, &p), 0);
	assert_int_equal(netmgr_cidr_parse("10.1.2.3/32", &net, &p), 0);
	assert_int_equal(netmgr_cidr_parse("10.1.2.1/24", &net, &p), -EINVAL); /* host bits */
	assert_int_equal(netmgr_cidr_parse("10.1.2.0", &net, &p), -EINVAL);
	assert_int_equal(netmgr_cidr_parse("10.1.2.0/33", &net, &p), -EINVAL);
	assert_int_equal(netmgr_cidr_parse("10.1.2.0/", &net, &p), -EINVAL);
	assert_int_equal(netmgr_cidr_parse("10.1.2.0/-8", &net, &p), -EINVAL);
	assert_int_equal(netmgr_cidr_parse("10.1.256.0/24", &net, &p), -EINVAL);
	assert_int_equal(netmgr_cidr_parse("10.1.2/24", &net, &p), -EINVAL);
	assert_int_equal(netmgr_cidr_parse("10.01.2.0/24", &net, &p), -EINVAL);
	assert_int_equal(netmgr_cidr_parse("10.1.2.0.0/24", &net, &p), -EINVAL);
	assert_int_equal(netmgr_cidr_parse(" 10.1.2.0/24", &net, &p), -EINVAL);
	netmgr_ip_format(0xc0a80101, buf);
	assert_string_equal(buf, "192.168.1.1");
	assert_true(netmgr_overlaps(0x0a000000, 8, 0x0a010200, 24));
	assert_true(netmgr_overlaps(0x0a010200, 24, 0x0a000000, 8));
	assert_true(netmgr_overlaps(0x0a010200, 24, 0x0a010280, 25));
	assert_false(netmgr_overlaps(0x0a010200, 24, 0x0a010300, 24));
	assert_true(netmgr_overlaps(0x0a010200, 24, 0, 0)); /* a default route covers all */
}

static const struct netmgr_net nat_net = {
    .name = "lan",
    .mode = NETMGR_NAT,
    .status = NETMGR_UP,
    .bridge = "vr-lan",
    .net = 0x0a4d0300,
    .gw = 0x0a4d0301,
    .prefix = 24,
    .dhcp = true,
    .dhcp_lo = 0x0a4d0380,
    .dhcp_hi = 0x0a4d03fe,
};

static void test_state_roundtrip(void **state)
{
	(void)state;
	char text[2048], err[160];
	struct netmgr_net n, back;
	assert_int_equal(netmgr_state_format(&nat_net, text, sizeof(text)), 0);
	assert_non_null(strstr(text, "subnet=10.77.3.0/24\n"));
	assert_non_null(strstr(text, "dhcp-range=10.77.3.128-10.77.3.254\n"));
	assert_int_equal(netmgr_state_parse(text, &back, err, sizeof(err)), 0);
	assert_memory_equal(&back, &nat_net, sizeof(back));

	memset(&n, 0, sizeof(n));
	strcpy(n.name, "red");
	n.mode = NETMGR_ISOLATED;
	n.status = NETMGR_CREATING;
	strcpy(n.bridge, "vr-sw");
	strcpy(n.sw, "sw");
	n.vlan = 10;
	assert_int_equal(netmgr_state_format(&n, text, sizeof(text)), 0);
	assert_non_null(strstr(text, "status=creating\n"));
	assert_int_equal(netmgr_state_parse(text, &back, err, sizeof(err)), 0);
	assert_memory_equal(&back, &n, sizeof(back));

	/* Too small a buffer is refused, not truncated. */
	assert_int_equal(netmgr_state_format(&nat_net, text, 40), -ENOSPC);
}

static void test_state_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "",
	    "name=lan\nmode=nat\nstatus=up\n",		       /* no bridge */
	    "name=lan\nmode=wifi\nstatus=up\nbridge=vr-lan\n", /* unknown mode */
	    "name=Lan\nmode=nat\nstatus=up\nbridge=vr-lan\n",
	    "name=lan\nmode=nat\nstatus=maybe\nbridge=vr-lan\n",
	    "name=lan\nmode=nat\nstatus=up\nbridge=vr-lan-is-far-too-long\n",
	    "name=lan\nmode=nat\nstatus=up\nbridge=vr-lan\nsubnet=10.0.0.1/24\n",
	    "name=lan\nmode=nat\nstatus=up\nbridge=vr-lan\nvlan=1\n",
	    "name=lan\nmode=nat\nstatus=up\nbridge=vr-lan\nvlan=5000\n",
	    "name=lan\nmode=nat\nstatus=up\nbridge=vr-lan\ndhcp=on\n", /* no subnet */
	    "name=lan\nmode=nat\nstatus=up\nbridge=vr-lan\nversion=2\n",
	    "name=lan\nmode=nat\nstatus=up\nbridge=vr-lan\njunk\n",
	    "name=lan\nmode=nat\nstatus=up\nbridge=../etc\n",
	    "name=lan\nmode=nat\nstatus=up\nbridge=br0\n",     /* not one of ours */
	    "name=lan\nmode=nat\nstatus=up\nbridge=vr-a\"b\n", /* nft syntax */
	    "name=lan\nmode=nat\nstatus=up\nbridge=vr-lan\nuplink=e 0\n",
	};
	struct netmgr_net n;
	char err[160];
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		assert_int_equal(netmgr_state_parse(bad[i], &n, err, sizeof(err)), -EINVAL);
		assert_true(err[0] != 0);
	}
	/* Comments and unknown keys (a newer version) are accepted. */
	assert_int_equal(netmgr_state_parse("# x\nname=lan\nmode=isolated\nstatus=up\n"
					    "bridge=vr-lan\nfuture=1\n",
					    &n, err, sizeof(err)),
			 0);
}

/* The state directory: created on demand, networks listed by name, broken files skipped. */
static void test_state_dir(void **state)
{
	(void)state;
	char dir[] = "/tmp/vireo-netmgr-test-XXXXXX", sub[64], path[128], text[2048], err[256];
	struct netmgr nm;
	struct netmgr_net nets[4], got;
	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/a/b", dir);
	/* Missing and not created: empty. */
	assert_int_equal(netmgr_open(&nm, sub, false, err, sizeof(err)), 0);
	assert_int_equal(netmgr_list(&nm, nets, 4, err, sizeof(err)), 0);
	assert_int_equal(netmgr_get(&nm, "lan", &got, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no network named 'lan'"));
	netmgr_close(&nm);
	assert_int_equal(netmgr_open(&nm, sub, true, err, sizeof(err)), 0);
	assert_int_equal(strncmp(nm.tag, "vireo-net:", 10), 0);
	assert_int_equal(strlen(nm.tag), NETMGR_TAG_LEN);
	assert_int_equal(netmgr_state_format(&nat_net, text, sizeof(text)), 0);
	snprintf(path, sizeof(path), "%s/lan.net", sub);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/bad.net", sub);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("garbage\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/other.net", sub); /* names another network */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(netmgr_list(&nm, nets, 4, err, sizeof(err)), 1);
	assert_string_equal(nets[0].name, "lan");
	assert_int_equal(netmgr_get(&nm, "lan", &got, err, sizeof(err)), 0);
	assert_int_equal(got.gw, nat_net.gw);
	assert_int_equal(netmgr_get(&nm, "bad", &got, err, sizeof(err)), -EINVAL);
	assert_int_equal(netmgr_get(&nm, "other", &got, err, sizeof(err)), -EINVAL);
	assert_int_equal(netmgr_get(&nm, "../x", &got, err, sizeof(err)), -EINVAL);
	/* The tag is a function of the directory. */
	char tag[NETMGR_TAG_LEN + 1];
	strcpy(tag, nm.tag);
	netmgr_close(&nm);
	assert_int_equal(netmgr_open(&nm, sub, false, err, sizeof(err)), 0);
	assert_string_equal(nm.tag, tag);
	netmgr_close(&nm);
	assert_int_equal(netmgr_open(&nm, dir, false, err, sizeof(err)), 0);
	assert_string_not_equal(nm.tag, tag);
	netmgr_close(&nm);
	/* An unmanaged name leaves the bridge name alone. */
	char bridge[IFNAMSIZ];
	setenv("VIREO_NET_DIR", sub, 1);
	assert_int_equal(netmgr_resolve("br0", bridge, err, sizeof(err)), 0);
	assert_string_equal(bridge, "br0");
	assert_int_equal(netmgr_resolve("lan", bridge, err, sizeof(err)), 0);
	assert_string_equal(bridge, "vr-lan");
	unsetenv("VIREO_NET_DIR");
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),	  cmocka_unit_test(test_modes),
	    cmocka_unit_test(test_cidr),	  cmocka_unit_test(test_state_roundtrip),
	    cmocka_unit_test(test_state_rejects), cmocka_unit_test(test_state_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
