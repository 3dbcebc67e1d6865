#!/usr/bin/env bash
# Installs the Debian packages the lab needs when they are missing: iproute2 (ip netns, veth,
# bridges), nftables (kube-proxy's nft), bird2 and frr (the router's two daemons), arping, ndisc6 and tcpdump (to ask who answers). Needs root
# to install.
set -euo pipefail
need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v bird >/dev/null 2>&1 || need+=(bird2)
command -v arping >/dev/null 2>&1 || need+=(arping)
command -v ndisc6 >/dev/null 2>&1 || need+=(ndisc6)
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
[ -x /usr/lib/frr/bgpd ] && command -v vtysh >/dev/null 2>&1 || need+=(frr)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "the lab needs the Debian packages ${need[*]}: install them as root (apt-get install ${need[*]})" >&2
	exit 1
fi
echo "installing ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
