"""Moving a replica between a broker's log dirs (AlterReplicaLogDirs v2,
DescribeLogDirs, DescribeReplicaLogDirs) with the Apache Kafka Java
AdminClient 3.9 (java/JavaLogDirsTest.java): the replica moves while it is
written to and every record is read back in order afterwards; a dir that is
not a log dir fails with LogDirNotFoundException."""

from __future__ import annotations

from pathlib import Path

import pytest

from compat_util import compile_java, run_java_main
from conftest import Broker

JAVA_SRC = Path(__file__).resolve().parent / "java" / "JavaLogDirsTest.java"
NODE_ID = 1


@pytest.fixture(scope="session")
def java_log_dirs_classes(java_classpath, tmp_path_factory) -> str:
    return compile_java(JAVA_SRC, java_classpath, tmp_path_factory.mktemp("java-log-dirs-classes"))


def test_java_alter_replica_log_dirs(request, tmp_path, topic, java_log_dirs_classes):
    a, b = tmp_path / "dir-a", tmp_path / "dir-b"
    a.mkdir()
    b.mkdir()
    broker = Broker(tmp_path / "broker", {"log.dirs": f"{a},{b}", "metadata.log.dir": str(a),
                                          "node.id": str(NODE_ID)})
    request.node._gregor_brokers = [broker]
    broker.start()
    try:
        run_java_main(java_log_dirs_classes, "JavaLogDirsTest", broker.bootstrap, topic, str(NODE_ID))
        assert sum(1 for d in (a, b) if (d / f"{topic}-0").is_dir()) == 1
    finally:
        broker.stop()
