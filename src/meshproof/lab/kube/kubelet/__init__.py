"""The lab's kubelet: pods as OS processes with their own loopback IPs.

Import :mod:`meshproof.lab.kube.kubelet.runtime` for the :class:`Kubelet`; this package
itself stays empty so that the pod process (``kubelet.pod``) imports nothing heavy.
"""
