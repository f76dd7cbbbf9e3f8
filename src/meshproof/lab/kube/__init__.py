"""The lab's Kubernetes: an API server per cluster, its controllers and a kubelet.

The API server half: ``store.MemoryStore`` (the ``interfaces.ObjectStore`` every
controller and the kubelet write through) and ``server.ApiServer`` (the HTTPS
endpoint clients and kubectl talk to), with ``resources`` (what is served),
``discovery``, ``selectors``, ``patch``, ``defaults``, ``validation``, ``kinds``,
``scale``, ``tables`` / ``printercolumns`` (kubectl's server-side printing),
``streams`` (exec, logs, proxies, eviction), ``protobuf`` (kubectl's typed
writes), ``requestlog`` and ``servingcert``.
"""
