"""Settings: `SIYU_*` environment variables, then a `siyu.toml` in the data directory.

Embedded by default (ARCHITECTURE.md principle 2): a SQLite file for operational state and a
DuckDB file for analytics, both inside the data directory. `SIYU_DATABASE_URL` switches the
operational store to PostgreSQL with no other change.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_DATA_DIR = Path("siyu-data")


def _toml_path() -> Path:
    data_dir = Path(os.environ.get("SIYU_DATA_DIR", DEFAULT_DATA_DIR))
    return data_dir / "siyu.toml"


class Settings(BaseSettings):
    """Everything configurable; every field can be set as `SIYU_<NAME>` or in siyu.toml."""

    model_config = SettingsConfigDict(env_prefix="SIYU_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the operational store; default: SQLite file in data_dir.",
    )
    warehouse_path: Path | None = Field(
        default=None, description="DuckDB file for analytics; default: data_dir/warehouse.duckdb."
    )
    brand_code: str = "default"
    brand_name: str = "Default brand"
    timezone: str = "Asia/Shanghai"
    # SPEC §4: an identifier value carried by more than K records of one source merges nothing.
    k_guard: int = 5
    encryption_key: str | None = None
    # Personal data at rest (siyu.pii): the 32-byte data key as base64, or else the key file
    # (default data_dir/pii.key, written once with mode 0600). Back it up apart from the data:
    # without it sealed phones, emails and names cannot be read (docs/pii.md).
    pii_key: str | None = Field(default=None, repr=False)
    pii_key_file: Path | None = None
    # SPEC §5–6 constants (siyu.metrics.constants): `[metric] t1 = 45` in siyu.toml or
    # SIYU_METRIC__T1=45.
    metric: dict[str, int] = Field(default_factory=dict)
    # SOP guard defaults (siyu.sop.guards): `[sop] holdout = 0.1`, daily_cap, weekly_cap,
    # quiet_start = "22:00", quiet_end = "08:00"; each SOP's `guards:` overrides them.
    sop: dict[str, float | int | str] = Field(default_factory=dict)

    # WeCom (企业微信): the corp, a secret with customer-contact (客户联系) permission, and the
    # callback's Token / EncodingAESKey. wecom_api_base points at WeCom or at `siyu wecom-sim`.
    wecom_corp_id: str | None = None
    wecom_secret: str | None = None
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    wecom_callback_token: str | None = None
    wecom_encoding_aes_key: str | None = None
    # A callback whose timestamp is further than this from our clock is refused (replay guard).
    wecom_callback_max_skew_seconds: int = 300
    wecom_requests_per_second: float = 20.0
    wecom_timeout_seconds: float = 10.0
    # SMS gateway for the outbox worker (`siyu sms-sim` locally; a provider behind the same API).
    sms_api_base: str | None = None
    sms_api_key: str | None = None
    # A WeCom mass-message task the staff member has not confirmed after this many hours counts
    # as unconfirmed (message.unconfirmed) for its recipients.
    wecom_unconfirmed_after_hours: float = 24.0

    @property
    def metric_constants(self):  # type: ignore[no-untyped-def]
        from siyu.metrics.constants import Constants

        return Constants.from_mapping(self.metric)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_toml_path())
        return (init_settings, env_settings, toml)

    @cached_property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'siyu.db').resolve()}"

    @cached_property
    def duckdb_path(self) -> Path:
        return self.warehouse_path or self.data_dir / "warehouse.duckdb"

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")


def load_settings(**overrides: object) -> Settings:
    """Read settings; explicit overrides (e.g. from CLI flags) win over env and siyu.toml."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    if "data_dir" in clean:
        os.environ["SIYU_DATA_DIR"] = str(
            clean["data_dir"]
        )  # so siyu.toml is found beside the data
    return Settings(**clean)  # type: ignore[arg-type]
