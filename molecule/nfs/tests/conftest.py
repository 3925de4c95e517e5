"""Fixtures shared by the NFS tests: both QEMU guests, driven explicitly (every check needs
one side to act and the other to observe)."""

import os

import pytest
import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]


def _host(name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


@pytest.fixture(scope="module")
def server():
    return _host("nfs-server")


@pytest.fixture(scope="module")
def client():
    return _host("nfs-client")
