"""medpay — declarative rules engine for medical-insurance payment settlement (医保支付规则引擎)."""

__version__ = "0.1.0"
