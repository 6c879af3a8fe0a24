"""Alert channels beside Web Push: SMS (sms.py) and the WeCom group robot (wecom.py)."""
