"""Board power through NVML (nvidia-ml-py): energy counter, sampled power, clocks, throttling.

:class:`PowerMeter` runs a workload back to back for at least ``min_seconds`` (1 s by default:
the board's power readings average over tens of milliseconds) and reports average power from the
total-energy counter where the GPU has one (Volta and later), else from samples taken at the
highest rate NVML answers. SM and memory clocks, temperature and clock-event (throttle) reasons
are sampled alongside, so a reading taken while the card throttled can be recognised.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from simgpu.errors import GPUUnavailableError


def _nvml() -> Any:
    try:  # nvidia-ml-py is optional (the 'gpu' extra): imported only where power is read
        import pynvml
    except ImportError:
        raise GPUUnavailableError(
            "power measurement needs NVML bindings: pip install nvidia-ml-py "
            "(the 'gpu' extra of simgpu)"
        ) from None
    return pynvml


class PowerMeter:
    """NVML readings for one GPU (index 0 by default)."""

    def __init__(self, index: int = 0, sample_interval_s: float = 0.005) -> None:
        nv = _nvml()
        try:
            nv.nvmlInit()
            self.handle = nv.nvmlDeviceGetHandleByIndex(index)
        except nv.NVMLError as exc:
            raise GPUUnavailableError(f"NVML could not open GPU {index}: {exc}") from None
        self.nv = nv
        self.sample_interval_s = sample_interval_s
        self.has_energy_counter = self._energy_mJ() is not None

    # -- single readings (None where the driver does not answer) --------------------------------
    def _try(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(self.handle, *args)
        except (self.nv.NVMLError, AttributeError):
            return None

    def _energy_mJ(self) -> int | None:
        return self._try(self.nv.nvmlDeviceGetTotalEnergyConsumption)

    def power_W(self) -> float | None:
        mw = self._try(self.nv.nvmlDeviceGetPowerUsage)
        return None if mw is None else mw / 1000.0

    def clocks_MHz(self) -> tuple[float | None, float | None]:
        sm = self._try(self.nv.nvmlDeviceGetClockInfo, self.nv.NVML_CLOCK_SM)
        mem = self._try(self.nv.nvmlDeviceGetClockInfo, self.nv.NVML_CLOCK_MEM)
        return sm, mem

    def temperature_C(self) -> float | None:
        return self._try(self.nv.nvmlDeviceGetTemperature, self.nv.NVML_TEMPERATURE_GPU)

    def throttle_reasons(self) -> int | None:
        fn = getattr(self.nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
            self.nv, "nvmlDeviceGetCurrentClocksThrottleReasons", None
        )
        return None if fn is None else self._try(fn)

    def describe(self) -> dict[str, Any]:
        """Static facts for the manifest: name, UUID, driver, limits, maximum clocks."""
        nv = self.nv

        def s(v: Any) -> Any:
            return v.decode() if isinstance(v, bytes) else v

        sm_max = self._try(nv.nvmlDeviceGetMaxClockInfo, nv.NVML_CLOCK_SM)
        mem_max = self._try(nv.nvmlDeviceGetMaxClockInfo, nv.NVML_CLOCK_MEM)
        app_sm = self._try(nv.nvmlDeviceGetApplicationsClock, nv.NVML_CLOCK_SM)
        app_mem = self._try(nv.nvmlDeviceGetApplicationsClock, nv.NVML_CLOCK_MEM)
        limit = self._try(nv.nvmlDeviceGetEnforcedPowerLimit)
        try:
            driver = s(nv.nvmlSystemGetDriverVersion())
        except nv.NVMLError:
            driver = None
        sm_now, mem_now = self.clocks_MHz()
        pcie_gen = self._try(nv.nvmlDeviceGetMaxPcieLinkGeneration)
        pcie_width = self._try(nv.nvmlDeviceGetMaxPcieLinkWidth)
        return {
            "nvml_name": s(self._try(nv.nvmlDeviceGetName)),
            "uuid": s(self._try(nv.nvmlDeviceGetUUID)),
            "driver_version": driver,
            "power_limit_W": None if limit is None else limit / 1000.0,
            "sm_clock_max_MHz": sm_max,
            "mem_clock_max_MHz": mem_max,
            "sm_clock_application_MHz": app_sm,
            "mem_clock_application_MHz": app_mem,
            "sm_clock_idle_MHz": sm_now,
            "mem_clock_idle_MHz": mem_now,
            "temperature_idle_C": self.temperature_C(),
            "pcie_max_generation": pcie_gen,
            "pcie_max_width": pcie_width,
            "energy_counter": self.has_energy_counter,
        }

    # -- windows -----------------------------------------------------------------------------
    def measure(
        self,
        enqueue: Callable[[], object],
        synchronize: Callable[[], object],
        min_seconds: float = 1.0,
        batch_seconds: float = 0.05,
        call_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Run ``enqueue`` back to back for >= ``min_seconds``; return the power columns.

        ``call_seconds`` (the time of one call, if known) sizes the batches enqueued between
        synchronisations so that the GPU never idles waiting for the host.
        """
        per_batch = 1
        if call_seconds and call_seconds > 0:
            per_batch = max(1, int(batch_seconds / call_seconds))
        sampler = _Sampler(self)
        synchronize()
        e0 = self._energy_mJ()
        t0 = time.perf_counter()
        sampler.start()
        calls = 0
        while True:
            for _ in range(per_batch):
                enqueue()
            calls += per_batch
            synchronize()
            if time.perf_counter() - t0 >= min_seconds:
                break
        t1 = time.perf_counter()
        e1 = self._energy_mJ()
        sampler.stop()
        window = t1 - t0
        samples = sampler.power
        if e0 is not None and e1 is not None and e1 > e0:
            power = (e1 - e0) / 1000.0 / window
            source = "energy_counter"
        elif samples:
            power = sum(samples) / len(samples)
            source = "sampled"
        else:
            power, source = None, None

        def mean(xs: list[float]) -> float | None:
            return sum(xs) / len(xs) if xs else None

        throttle = 0
        for r in sampler.throttle:
            throttle |= int(r)
        return {
            "power_W": power,
            "energy_J": None if power is None else power * window / calls,
            "power_window_s": window,
            "power_source": source,
            "sm_clock_MHz": mean(sampler.sm),
            "mem_clock_MHz": mean(sampler.mem),
            "temp_C": max(sampler.temp) if sampler.temp else None,
            "throttle_reasons": throttle if sampler.throttle else None,
        }

    def idle_power(self, seconds: float = 2.0) -> dict[str, Any]:
        """Average board power with nothing running (the card stays at its current clocks)."""
        e0 = self._energy_mJ()
        sampler = _Sampler(self)
        t0 = time.perf_counter()
        sampler.start()
        time.sleep(seconds)
        sampler.stop()
        t1 = time.perf_counter()
        e1 = self._energy_mJ()
        counter = None if e0 is None or e1 is None else (e1 - e0) / 1000.0 / (t1 - t0)
        sampled = sum(sampler.power) / len(sampler.power) if sampler.power else None
        return {
            "idle_power_W_counter": counter,
            "idle_power_W_sampled": sampled,
            "samples": len(sampler.power),
            "sm_clock_MHz": sum(sampler.sm) / len(sampler.sm) if sampler.sm else None,
        }


class _Sampler:
    """Background thread reading power, clocks, temperature and throttle reasons."""

    def __init__(self, meter: PowerMeter) -> None:
        self.meter = meter
        self.power: list[float] = []
        self.sm: list[float] = []
        self.mem: list[float] = []
        self.temp: list[float] = []
        self.throttle: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        m = self.meter
        while not self._stop.is_set():
            p = m.power_W()
            if p is not None:
                self.power.append(p)
            sm, mem = m.clocks_MHz()
            if sm is not None:
                self.sm.append(sm)
            if mem is not None:
                self.mem.append(mem)
            t = m.temperature_C()
            if t is not None:
                self.temp.append(t)
            r = m.throttle_reasons()
            if r is not None:
                self.throttle.append(r)
            self._stop.wait(m.sample_interval_s)
