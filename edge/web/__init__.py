"""The kiosk's web pages, served by the kiosk process itself (FastAPI on uvicorn, own thread).

    /          the kiosk screen: consent, live picture and guidance, the result card
    /staff     the staff dashboard: recent screenings, counts per day, CSV, device health
    /check     the phone and PC page: a photo in, the result and its heatmap out
    /healthz   200 while camera and model are live; /metrics for Prometheus

One module per concern: app (factory, security headers), auth (password, sessions, CSRF,
login limits), i18n (translations), live (loop thread -> asyncio), preview (the live
picture), uploads (size, type and pixel checks), photo (the check page's own model),
records (read-only audit queries), pages and api (the routes), server (the output that
runs it all).
"""
