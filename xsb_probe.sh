#!/bin/bash
# Lab probe for the batch work: which xenstored, which transport; then tests, benchmark.
echo "== xenstored:"; for p in /proc/[0-9]*; do c=$(cat $p/comm 2>/dev/null); case "$c" in *xenstore*) echo "$c $(tr '\0' ' ' < $p/cmdline)";; esac; done
ls -l /run/xenstored/ /var/run/xenstored/ /dev/xen/xenbus 2>&1
grep -i "quota\|maxrequests\|outstanding" /etc/xen/oxenstored.conf 2>/dev/null
python3 -c "
from pyxen import _xswire
c=_xswire.Conn(); print('batch transport:', 'socket' if c.sock else 'xenbus device'); c.close()
"
cd /lab/work
python3 -m pytest -v -p no:cacheprovider tests/lab/test_xenstore_batch.py; echo "BATCH_TESTS_RC $?"
python3 benchmarks/xenstore_ops.py --json --rounds 3; echo "BENCH_RC $?"
python3 -m pytest -q -p no:cacheprovider tests/lab/test_xenstore.py tests/lab/test_watches.py tests/lab/test_handles.py; echo "OLD_TESTS_RC $?"
python3 -m pytest -q -p no:cacheprovider tests/lab/test_guest.py -k "paused_build_matches_xl or xenstore_tree_matches_xl"; echo "GUEST_TESTS_RC $?"
python3 -m pytest -q -p no:cacheprovider tests/lab/test_devices.py -k "file_disk_attach_read_list_detach or vdev_in_use or pyxen_attached_disk_listed_and_detached_by_xl"; echo "DEVICE_TESTS_RC $?"
