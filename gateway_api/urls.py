from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from . import docs_page, views

urlpatterns = [
    path("clients/", views.ClientList.as_view(), name="gateway-api-clients"),
    path("clients/<int:client_id>/", views.ClientDetail.as_view(), name="gateway-api-client"),
    path("clients/<int:client_id>/changes/", views.ClientChanges.as_view(), name="gateway-api-client-changes"),
    path("clients/<int:client_id>/balance/", views.ClientBalance.as_view(), name="gateway-api-client-balance"),
    path("clients/<int:client_id>/statement/", views.ClientStatement.as_view(), name="gateway-api-client-statement"),
    path(
        "clients/<int:client_id>/statement.csv",
        views.ClientStatementCsv.as_view(),
        name="gateway-api-client-statement-csv",
    ),
    path("payments/", views.PaymentList.as_view(), name="gateway-api-payments"),
    path("payments/<int:payment_id>/", views.PaymentDetail.as_view(), name="gateway-api-payment"),
    path("payouts/", views.PayoutList.as_view(), name="gateway-api-payouts"),
    path("payouts/<int:payout_id>/", views.PayoutDetail.as_view(), name="gateway-api-payout"),
    path("webhook-endpoints/", views.WebhookEndpointList.as_view(), name="gateway-api-webhook-endpoints"),
    path(
        "webhook-endpoints/<int:endpoint_id>/",
        views.WebhookEndpointDetail.as_view(),
        name="gateway-api-webhook-endpoint",
    ),
    path(
        "webhook-endpoints/<int:endpoint_id>/disable/",
        views.WebhookEndpointDisable.as_view(),
        name="gateway-api-webhook-endpoint-disable",
    ),
    path(
        "webhook-endpoints/<int:endpoint_id>/enable/",
        views.WebhookEndpointEnable.as_view(),
        name="gateway-api-webhook-endpoint-enable",
    ),
    path(
        "webhook-endpoints/<int:endpoint_id>/rotate-secret/",
        views.WebhookEndpointRotateSecret.as_view(),
        name="gateway-api-webhook-endpoint-rotate-secret",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="gateway-api-schema"),
    path("docs/", docs_page.DocsPage.as_view(url_name="gateway-api-schema"), name="gateway-api-docs"),
    path("docs/swagger-ui.css", docs_page.swagger_css, name="gateway-api-docs-css"),
    path("docs/assets/<int:number>", docs_page.swagger_css_asset, name="gateway-api-docs-asset"),
]
