#!/usr/bin/env bash
# Print Redis URL $1 with its database number set to $2 (redis://host:port[/n] → /$2).
url=${1%/}
[[ $url =~ /[0-9]+$ ]] && url=${url%/*}
echo "$url/$2"
