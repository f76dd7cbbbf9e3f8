"""A locustfile that forgets to register the exact-latency recorder."""

from __future__ import annotations

from locust import FastHttpUser, constant, task


class Plain(FastHttpUser):
    wait_time = constant(0.01)

    @task
    def root(self) -> None:
        self.client.get("/")
