"""A locustfile whose import hangs, so Locust never starts its load."""

from __future__ import annotations

import time

from locust import FastHttpUser, task

time.sleep(60)


class Idle(FastHttpUser):
    @task
    def nothing(self) -> None:
        self.client.get("/")
