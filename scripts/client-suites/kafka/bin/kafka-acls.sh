#!/usr/bin/env bash
# kafka-acls.sh stand-in for third-party test suites: Gregor has no ACLs yet,
# so this fails the way a tool run against a broker without an authorizer would.
echo "Error: ACLs are not implemented by Gregor (kafka-acls.sh $*)" >&2
exit 1
