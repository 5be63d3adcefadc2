"""PIPL (个人信息保护法) rights of one customer: export everything Siyu holds about them, and
erase their personal data while the numbers built on their orders stay as they were."""
